"""Stage: the headline numbers of every table in one metrics file (`dvc metrics show` prints it, `dvc
metrics diff` compares it between commits or experiments): per table and row, our mIoU / f-measure / mean
column (over seeds: their mean and standard deviation), and Table 4's time and memory ratios to softmax.
The test-split table (scored by a server) has none."""
import json
from pathlib import Path

import pandas as pd

from segsort.io import atomic_path
from segsort.stage import parser, stage_main

HEADLINE_COLUMNS = ["mIoU", "mIoU std", "f-measure", "f-measure std", "mean", "Overall time vs softmax",
                    "memory vs softmax"]


def row_key(row: pd.Series) -> str:
    """A row's name: its model (and boundary metric), or for Table 4 its method."""
    if "model" in row:
        return row["model"] + (f" {row['metric']}" if "metric" in row else "")
    return row["Method"]


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--tables", required=True, type=Path, nargs="+", help="reports/tableN.csv files")
    p.add_argument("--out", required=True, type=Path, help="JSON to write")
    args = p.parse_args()
    headline = {}
    for path in args.tables:
        table = pd.read_csv(path)
        columns = [c for c in HEADLINE_COLUMNS if c in table.columns]
        if columns:
            headline[path.stem] = {row_key(row): {c: None if pd.isna(row[c]) else float(row[c]) for c in columns}
                                   for _, row in table.iterrows()}
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(headline, indent=2) + "\n")
    print(f"{args.out}: {sum(len(rows) for rows in headline.values())} rows of {len(headline)} tables")


if __name__ == "__main__":
    main()
