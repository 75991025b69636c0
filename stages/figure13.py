"""Stage: Figure 13 of the paper, mIoU against the k of kNN at inference (one curve per number of k-means
iterations), from the inference sweep's metrics; the curve also as CSV for `dvc plots`."""
import json
from pathlib import Path

import pandas as pd

from segsort.figures import sweep_figure
from segsort.io import atomic_path
from segsort.stage import parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--metrics", required=True, type=Path, nargs="+", help="metrics JSON of each sweep setting")
    p.add_argument("--curve", required=True, type=Path, help="CSV to write")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    args = p.parse_args()
    rows = []
    for path in args.metrics:
        metrics = json.loads(path.read_text())
        rows.append({"kmeans_iterations": metrics["inference"]["kmeans_iterations"],
                     "knn_k": metrics["inference"]["knn_k"], "mIoU": round(100 * metrics["miou"], 2),
                     "f-measure": round(100 * metrics["boundary_f"], 2), "model": metrics["model"]})
    curve = pd.DataFrame(rows).sort_values(["kmeans_iterations", "knn_k"])
    with atomic_path(args.curve) as tmp:
        curve.to_csv(tmp, index=False)
    with atomic_path(args.out) as tmp:
        sweep_figure(curve, x="knn_k", series="kmeans_iterations", path=tmp,
                     xlabel="k nearest neighbours", series_label="k-means iterations",
                     title=f"Figure 13: mIoU against k of kNN ({curve['model'].iloc[0]})")
    for iterations, group in curve.groupby("kmeans_iterations"):
        print(f"{iterations} k-means iterations: mIoU {group['mIoU'].min()}-{group['mIoU'].max()} over k")


if __name__ == "__main__":
    main()
