"""Stage: one table of the paper (params.yaml `tables`) as CSV: each row's label columns and model, then
each column's value from the model's metrics file (mIoU and boundary f-measure, or per-class IoU or
boundary precision/recall/F), beside the paper's value (references/paper_tables.yaml) and the difference
where the paper has that column."""
import json
from pathlib import Path

from segsort.data import class_names
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
    params = load_params(args.params)
    metrics = {path.stem: json.loads(path.read_text()) for path in args.metrics}
    table = build_table(args.table, params["tables"][args.table], metrics, load_paper_tables(args.paper)[args.table],
                        params["dataset"], class_names(params["dataset"]))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
