"""Stage: Figure 6 of the paper: images, their HED contours and HED-owt-ucm pseudo-segments, for the first
validation images of the dataset (from the pipeline's outputs) and some real sample images (computed here
with the same parameters)."""
from pathlib import Path

import numpy as np
from PIL import Image

from segsort.contours.hed import detect_contours, load_hed
from segsort.contours.maps import load_contours
from segsort.contours.quality import check_real_samples, pseudo_segments
from segsort.data.voc import image_path
from segsort.figures import pseudo_segments_figure
from segsort.io import DataError, atomic_path, read_id_list, read_image
from segsort.stage import add_device_argument, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--contours", required=True, type=Path, help="HED contour maps of the dataset (hed_contours)")
    p.add_argument("--segments", required=True, type=Path, help="pseudo-segments of the dataset (pseudo_segments)")
    p.add_argument("--samples", required=True, type=Path, help="real samples folder")
    p.add_argument("--out", required=True, type=Path)
    add_device_argument(p)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    cfg = params["figure6"]

    rows = []
    val = read_id_list(args.dataset_root / "ImageSets" / "Segmentation" / f"{params['evaluation']['eval_split']}.txt")
    for image_id in val[:cfg["dataset_images"]]:
        segments_path = args.segments / f"{image_id}.png"
        if not segments_path.is_file():
            raise DataError(f"{segments_path}: pseudo-segment map is missing")
        rows.append((image_id, read_image(image_path(args.dataset_root, image_id)),
                     load_contours(args.contours / f"{image_id}.png"), np.asarray(Image.open(segments_path))))
    root = check_real_samples(args.samples)
    model = load_hed(stage_device(args.device))
    for name in cfg["real_images"]:
        image = read_image(root / name)
        contours = detect_contours(model, [image])[0]
        rows.append((Path(name).stem, image, contours, pseudo_segments(contours, params["pseudo_segments"])))
    with atomic_path(args.out) as tmp:
        pseudo_segments_figure(rows, tmp)


if __name__ == "__main__":
    main()
