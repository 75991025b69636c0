"""Stage: quality and speed of HED contours and HED-owt-ucm pseudo-segments on the real sample images.

The BSDS contour benchmark of HED, boundary precision/recall/F and achievable segmentation accuracy of
the pseudo-segments at the pipeline's cut, and HED / owt-ucm speed, as one CSV (segsort/contours/quality.py).
"""
from pathlib import Path

import pandas as pd

from segsort.contours.hed import load_hed
from segsort.contours.quality import check_real_samples, quality_rows
from segsort.io import atomic_path
from segsort.stage import add_device_argument, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--samples", required=True, type=Path, help="real samples folder (bsds500/ and voc/)")
    p.add_argument("--out", required=True, type=Path, help="CSV report to write")
    add_device_argument(p)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)

    root = check_real_samples(args.samples)
    model = load_hed(stage_device(args.device))
    table = pd.DataFrame(quality_rows(model, root, params["pseudo_segments"], params["threads"],
                                      params["hed"]["batch_size"]))
    table["value"] = table["value"].round(4)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
