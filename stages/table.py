"""Stage: one table of the paper (params.yaml `tables`) as CSV: each row's label columns and model, then
each column's value from the model's metrics file (mIoU and boundary f-measure, or per-class IoU or
boundary precision/recall/F), beside the paper's value (references/paper_tables.yaml) and the difference
where the paper has that column. The test-split tables (Table 7) list the submission packages instead."""
import json
import zipfile
from pathlib import Path

from segsort.data import class_names
from segsort.io import DataError, atomic_path
from segsort.stage import load_params, parser, stage_main
from segsort.tables import build_table, load_paper_tables, server_table


def read_metrics(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a readable metrics file ({err})") from err


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--table", required=True, help="name of the table in params.yaml `tables`")
    rows = p.add_mutually_exclusive_group(required=True)
    rows.add_argument("--metrics", type=Path, nargs="+", help="metrics JSON of each row's model")
    rows.add_argument("--submissions", type=Path, nargs="+",
                      help="test-split package (zip) of each row's model, for the tables of `evaluation.server_tables`")
    p.add_argument("--replicate-metrics", type=Path, nargs="*",
                   help="metrics JSON of the rows' models trained with other seeds (reports/<dataset>/seeds/"
                        "<seed>/metrics/<model>.json): the table shows mean and std over the seeds")
    p.add_argument("--paper", required=True, type=Path, help="the paper's tables (references/paper_tables.yaml)")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    paper, rows = load_paper_tables(args.paper)[args.table], params["tables"][args.table]
    if (args.submissions is not None) != (args.table in params["evaluation"]["server_tables"]):
        raise DataError(f"{args.table}: the tables of `evaluation.server_tables` take --submissions, the others --metrics")
    if args.submissions:
        from segsort.submission import SERVERS  # loads torch, which the other tables do without

        packages = {}
        for path in args.submissions:
            try:
                with zipfile.ZipFile(path) as package:
                    packages[path.stem] = (str(path), len(package.namelist()))
            except (OSError, zipfile.BadZipFile) as err:
                raise DataError(f"{path}: not a readable submission package ({err})") from err
        table = server_table(args.table, rows, packages, paper, SERVERS[params["dataset"]])
    else:
        metrics = {path.stem: read_metrics(path) for path in args.metrics}
        replicates = None
        if args.replicate_metrics is not None:
            replicates = {}
            for path in args.replicate_metrics:
                replicates.setdefault(path.stem, []).append(read_metrics(path))
        table = build_table(args.table, rows, metrics, paper, params["dataset"], class_names(params["dataset"], params["datasets"]),
                            replicates)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
