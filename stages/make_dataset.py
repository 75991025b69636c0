"""Stage: make the dataset in VOC layout.

A dataset of your own (params.yaml `datasets`) is checked first (every problem of the folder, one line
each: segsort/data/own.py), and written only if there is none.

tiny is generated offline. voc2012 (VOC 2012 + SBD) is downloaded into --downloads from the URLs of
params.yaml `downloads` (or placed there by hand: the archives, or their extracted folders), verified
and converted; the optional VOC 2012 test images need VOC2012test.tar placed there by hand. cityscapes
needs an account: set CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD, or place gtFine_trainvaltest.zip and
leftImg8bit_trainvaltest.zip in --downloads (or their extracted gtFine/ and leftImg8bit/ folders in
<downloads>/cityscapes/).
"""
from pathlib import Path

from segsort.data.cityscapes import build_cityscapes
from segsort.data.own import build_own_dataset
from segsort.data.pascal import build_voc2012
from segsort.data.tiny import generate_tiny_dataset
from segsort.io import DataError
from segsort.stage import load_params, parser, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--out", required=True, type=Path, help="dataset root to create")
    p.add_argument("--downloads", type=Path, default=Path("data/downloads"),
                   help="where archives are downloaded, placed by hand and extracted (default: data/downloads)")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    if params["dataset"] in params["datasets"]:
        build_own_dataset(args.out, params["dataset"], params["datasets"][params["dataset"]], params["seed"])
    elif params["dataset"] == "tiny":
        generate_tiny_dataset(args.out, params["tiny"], params["seed"])
    elif params["dataset"] == "voc2012":
        build_voc2012(args.out, args.downloads, params["downloads"])
    elif params["dataset"] == "cityscapes":
        build_cityscapes(args.out, args.downloads)
    else:
        raise DataError(f"params.yaml dataset: {params['dataset']!r} is not supported (supported: tiny, voc2012, cityscapes)")


if __name__ == "__main__":
    main()
