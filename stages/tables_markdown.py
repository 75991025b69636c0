"""Stage: reports/tables.md, every table CSV rendered with the paper's caption."""
from pathlib import Path

import pandas as pd

from segsort.io import atomic_path
from segsort.stage import load_params, parser, stage_main
from segsort.tables import load_paper_tables, tables_markdown


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--tables", required=True, type=Path, nargs="+", help="reports/tableN.csv files")
    p.add_argument("--paper", required=True, type=Path, help="the paper's tables (references/paper_tables.yaml)")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    tables = {path.stem: pd.read_csv(path) for path in args.tables}
    text = tables_markdown(tables, load_paper_tables(args.paper), load_params(args.params, args.set)["dataset"])
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(f"{args.out}: {len(tables)} tables")


if __name__ == "__main__":
    main()
