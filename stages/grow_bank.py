"""Stage: a bank grown by the labelled segments of a folder of images and masks, written as a new bank beside
the one it grows (segsort.grow.add_folder, the function behind `segsort bank add --out`)."""
from pathlib import Path

from segsort.grow import add_folder
from segsort.stage import add_device_argument, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("folder", type=Path, help="the folder: JPEGImages/, SegmentationClass/ with the bank's class ids")
    p.add_argument("--bank", required=True, type=Path, help="the bank grown (left as it is)")
    p.add_argument("--model", required=True, type=Path, help="the model checkpoint that made the bank")
    p.add_argument("--out", required=True, type=Path, help="the grown bank to write")
    add_device_argument(p)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    added = add_folder(args.bank, args.model, args.folder, params, stage_device(args.device), out=args.out)
    print(f"{args.out}: {args.bank} and {added['segments']} segments of {added['images']} images from {args.folder}")


if __name__ == "__main__":
    main()
