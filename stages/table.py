"""Stage: one table of the paper (params.yaml `tables`) as CSV: each row's columns as given, then the
mIoU and the boundary f-measure (mean over the classes, as the paper takes it) of the row's model from its metrics file."""
import json
from pathlib import Path

import pandas as pd

from segsort.io import DataError, atomic_path
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--table", required=True, help="name of the table in params.yaml `tables`")
    p.add_argument("--metrics", required=True, type=Path, nargs="+", help="metrics JSON of each row's model")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    rows = load_params(args.params)["tables"][args.table]
    metrics = {path.stem: json.loads(path.read_text()) for path in args.metrics}
    missing = [row["model"] for row in rows if row["model"] not in metrics]
    if missing:
        raise DataError(f"{args.table}: no metrics file given for {missing}")
    table = pd.DataFrame([{**row, "mIoU": round(100 * metrics[row["model"]]["miou"], 2),
                           "f-measure": round(100 * metrics[row["model"]]["boundary_f"], 2)} for row in rows])
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
