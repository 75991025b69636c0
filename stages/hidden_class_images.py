"""Stage: the labelled images added to the bank in the hidden-class experiment (params.yaml hidden_class):
the first N images of train_aug outside the bank split that show the dataset's hidden class, as a folder in
VOC layout for `segsort bank add`."""
from pathlib import Path

from segsort.data import hidden_class
from segsort.hidden_class import images_showing, write_image_folder
from segsort.io import DataError
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--images", required=True, type=int, help="how many images (N)")
    p.add_argument("--out", required=True, type=Path, help="folder to write")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    settings = params["hidden_class"]
    name, class_id = hidden_class(params)
    showing = images_showing(args.dataset_root, "train_aug", params["evaluation"]["bank_split"], class_id,
                             settings["min_share"])
    if len(showing) < args.images:
        raise DataError(f"params.yaml: hidden_class.images: {args.images} images asked for, but only "
                        f"{len(showing)} of train_aug outside the bank split show {name!r} on at least "
                        f"{settings['min_share']:.0%} of their pixels")
    write_image_folder(args.dataset_root, showing[:args.images], args.out)
    print(f"{args.out}: {args.images} images showing {name} ({', '.join(showing[:args.images])})")


if __name__ == "__main__":
    main()
