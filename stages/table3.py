"""Stage: Table 3 of the paper (unsupervised / supervised training and their combinations) as CSV."""
import json
from pathlib import Path

import pandas as pd

from segsort.io import atomic_path
from segsort.stage import load_params, parser, stage_main

COLUMNS = {"unsup_train_aug": "unsup. on train_aug", "sup_train_aug": "sup. on train_aug",
           "sup_train": "sup. on train"}


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--metrics", required=True, type=Path, nargs="+", help="metrics JSON of each row's model")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    rows = load_params(args.params)["table3"]
    metrics = {path.stem: json.loads(path.read_text()) for path in args.metrics}
    table = pd.DataFrame([{**{title: "✓" if row[key] else "" for key, title in COLUMNS.items()},
                           "model": row["model"], "mIoU": round(100 * metrics[row["model"]]["miou"], 2)}
                          for row in rows])
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
