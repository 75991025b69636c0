"""Stage: HED contour maps of every image of the splits in params `hed.splits`, as 16-bit grey PNGs.

Runs on the GPU if there is one, else on --cores CPU threads; same-size images are batched (at most
`hed.batch_size`). An interrupted run keeps its finished images and, rerun with the same inputs and
parameters, does the rest.
"""
from pathlib import Path

from segsort.contours.hed import contour_batches, load_hed
from segsort.contours.maps import save_contours
from segsort.data.voc import image_path
from segsort.io import DataError, ResumableFolder, atomic_file, files_fingerprint, read_id_list
from segsort.stage import add_device_argument, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--dataset-root", required=True, type=Path, help="dataset in VOC layout")
    p.add_argument("--out", required=True, type=Path, help="folder of <id>.png contour maps to create")
    p.add_argument("--cores", type=int, help="CPU threads (default: params `threads`)")
    add_device_argument(p)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params, args.cores)
    cfg = params["hed"]

    if not cfg["splits"]:
        raise DataError(f"{args.params}: hed.splits is empty")
    lists = args.dataset_root / "ImageSets" / "Segmentation"
    ids = sorted({image_id for split in cfg["splits"] for image_id in read_id_list(lists / f"{split}.txt")})
    paths = [image_path(args.dataset_root, image_id) for image_id in ids]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: image file is missing")
    folder = ResumableFolder(args.out, files_fingerprint(paths, cfg))
    done = [folder.done(f"{path.stem}.png") for path in paths]
    if any(done):
        print(f"resuming: {sum(done)} of {len(paths)} images already done")
    model = load_hed(stage_device(args.device))
    for path, contours in contour_batches(model, paths, cfg["batch_size"], skip=done):
        with atomic_file(folder.work / f"{path.stem}.png") as tmp:
            save_contours(tmp, contours)
    folder.finish()


if __name__ == "__main__":
    main()
