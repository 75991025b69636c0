"""Stage: Figure 11 (mIoU against the number of k-means clusters) or Figure 12 (against the embedding
dimension) from the ablation sweep's metrics plus the reference run's own; the curve also as CSV for
`dvc plots`."""
import json
from pathlib import Path

import pandas as pd

from segsort.figures import sweep_figure
from segsort.io import DataError, atomic_path
from segsort.stage import parser, stage_main

QUANTITIES = {  # x value read from a SegSort metrics file, axis label, title
    "clusters": (lambda m: m["grid"][0] * m["grid"][1], "k-means clusters (training and testing)",
                 "Figure 11: mIoU against the number of clusters"),
    "embedding_dim": (lambda m: m["embedding_dim"], "embedding dimension",
                      "Figure 12: mIoU against the embedding dimension"),
}


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--quantity", required=True, choices=QUANTITIES)
    p.add_argument("--metrics", required=True, type=Path, nargs="+", help="metrics JSON of each ablation point")
    p.add_argument("--reference", required=True, type=Path, help="metrics JSON of the run the ablation varies")
    p.add_argument("--curve", required=True, type=Path, help="CSV to write")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    args = p.parse_args()
    value_of, xlabel, title = QUANTITIES[args.quantity]
    reference = json.loads(args.reference.read_text())
    rows = []
    for path in [*args.metrics, args.reference]:
        metrics = json.loads(path.read_text())
        if "grid" not in metrics:
            raise DataError(f"{path}: not the metrics of a SegSort model (no k-means grid or embedding dimension)")
        rows.append({args.quantity: value_of(metrics), "mIoU": round(100 * metrics["miou"], 2),
                     "f-measure": round(100 * metrics["boundary_f"], 2), "run": reference["model"],
                     "source": "reference run" if path == args.reference else path.name})
    curve = pd.DataFrame(rows).sort_values(args.quantity)
    if curve[args.quantity].duplicated().any():
        raise DataError(f"{args.quantity}: a value appears twice among {[str(m) for m in args.metrics]} and "
                        f"{args.reference}; the ablation values must differ from the reference run's")
    with atomic_path(args.curve) as tmp:
        curve.to_csv(tmp, index=False)
    with atomic_path(args.out) as tmp:
        sweep_figure(curve, x=args.quantity, series="run", path=tmp, xlabel=xlabel, series_label="retrained",
                     title=f"{title} ({reference['model']})", log_x=args.quantity == "embedding_dim")
    print(curve.to_string(index=False))


if __name__ == "__main__":
    main()
