"""Stage: one table of the paper (params.yaml `tables`) as CSV: each row's label columns and model, then
for mIoU and the boundary f-measure (mean over the classes, as the paper takes it) our value from the
model's metrics file, the paper's value (references/paper_tables.yaml) and the difference."""
import json
from pathlib import Path

from segsort.io import atomic_path
from segsort.stage import load_params, parser, stage_main
from segsort.tables import build_table, load_paper_tables


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--table", required=True, help="name of the table in params.yaml `tables`")
    p.add_argument("--metrics", required=True, type=Path, nargs="+", help="metrics JSON of each row's model")
    p.add_argument("--paper", required=True, type=Path, help="the paper's tables (references/paper_tables.yaml)")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    rows = load_params(args.params)["tables"][args.table]
    metrics = {path.stem: json.loads(path.read_text()) for path in args.metrics}
    table = build_table(args.table, rows, metrics, load_paper_tables(args.paper)[args.table])
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
