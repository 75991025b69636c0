"""Stage: HED contour maps of every image of the splits in params `hed.splits`, as 16-bit grey PNGs."""
from pathlib import Path

import torch
from tqdm import tqdm

from segsort.contours.hed import detect_contours, load_hed, save_contours
from segsort.io import DataError, atomic_path, read_id_list, read_image
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--dataset-root", required=True, type=Path, help="dataset in VOC layout")
    p.add_argument("--out", required=True, type=Path, help="folder of <id>.png contour maps to create")
    args = p.parse_args()
    params = load_params(args.params)
    torch.set_num_threads(params["threads"])

    splits = params["hed"]["splits"]
    if not splits:
        raise DataError(f"{args.params}: hed.splits is empty")
    lists = args.dataset_root / "ImageSets" / "Segmentation"
    ids = sorted({image_id for split in splits for image_id in read_id_list(lists / f"{split}.txt")})
    model = load_hed()
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        for image_id in tqdm(ids, desc="HED contours", unit="image"):
            image = read_image(args.dataset_root / "JPEGImages" / f"{image_id}.jpg")
            save_contours(tmp / f"{image_id}.png", detect_contours(model, [image])[0])


if __name__ == "__main__":
    main()
