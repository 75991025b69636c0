"""Stage: Table 4 of the paper (runtime and memory of SegSort's inference against softmax's, and mIoU, for
a few k-means iterations x k of kNN): time and memory from the latency benchmark's CSV
(benchmarks/inference_latency.py, run on the machine being described: timings are not recomputed by
the DAG), mIoU from the inference sweep's metrics, beside the paper's values."""
import json
from pathlib import Path

import pandas as pd

from segsort.io import DataError, atomic_path
from segsort.stage import load_params, parser, stage_main
from segsort.tables import latency_table, load_paper_tables


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--latency", required=True, type=Path, help="CSV of benchmarks/inference_latency.py")
    p.add_argument("--sweep", required=True, type=Path, nargs="+", help="metrics JSON of the inference sweep")
    p.add_argument("--paper", required=True, type=Path, help="the paper's tables (references/paper_tables.yaml)")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    if not args.latency.is_file():
        raise DataError(f"{args.latency}: latency benchmark results are missing; run "
                        f"`python benchmarks/inference_latency.py --out {args.latency}`")
    sweep, models = {}, set()
    for path in args.sweep:
        metrics = json.loads(path.read_text())
        models.add(f"{metrics['model']} on {params['dataset']} {metrics['split']}")
        setting = (metrics["inference"]["kmeans_iterations"], metrics["inference"]["knn_k"])
        sweep[setting] = round(100 * metrics["miou"], 2)
    table = latency_table(load_paper_tables(args.paper)["table4"], pd.read_csv(args.latency),
                          params["table4"]["bank_size"], sweep, softmax_miou=None, miou_source=", ".join(sorted(models)))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
