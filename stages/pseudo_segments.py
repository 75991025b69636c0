"""Stage: HED-owt-ucm pseudo-segments: the UCM of every contour map, cut by params `pseudo_segments`.

Writes OUT/<id>.png (uint8 segment ids 0..n-1, grey PNG) and OUT/ucm/<id>.npz (the ucm2, uint16), so a
different cut can be made later from the stored UCMs alone. The segments are cut from the stored
(quantised) UCM, so they always agree with it.
"""
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from segsort.contours.hed import load_contours
from segsort.contours.owt_ucm import cut_ucm, dequantize_ucm, quantize_ucm, save_ucm, ucm_from_contours
from segsort.io import DataError, atomic_path
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--contours", required=True, type=Path, help="folder of <id>.png contour maps (hed_contours)")
    p.add_argument("--out", required=True, type=Path, help="pseudo-segment folder to create")
    args = p.parse_args()
    cfg = load_params(args.params)["pseudo_segments"]

    if not args.contours.is_dir():
        raise DataError(f"{args.contours}: contour folder is missing")
    paths = sorted(args.contours.glob("*.png"))
    if not paths:
        raise DataError(f"{args.contours}: no contour maps (*.png) in the folder")
    with atomic_path(args.out) as tmp:
        (tmp / "ucm").mkdir(parents=True)
        for path in tqdm(paths, desc="owt-ucm segments", unit="image"):
            stored = quantize_ucm(ucm_from_contours(load_contours(path)))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                labels = cut_ucm(dequantize_ucm(stored), cfg["cut"], cfg["threshold"],
                                 cfg["threshold_step"], cfg["max_regions"])
            for warning in caught:
                tqdm.write(f"warning: {path}: {warning.message}", file=sys.stderr)
            Image.fromarray(np.ascontiguousarray(labels)).save(tmp / f"{path.stem}.png")
            save_ucm(tmp / "ucm" / f"{path.stem}.npz", stored)


if __name__ == "__main__":
    main()
