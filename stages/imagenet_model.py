"""Stage: the starting model: ImageNet-pretrained backbone, freshly initialised decoder and embedding head."""
from pathlib import Path

from segsort.checkpoint import save_model
from segsort.models import build_model
from segsort.stage import load_params, parser, setup_torch, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--out", required=True, type=Path, help="model checkpoint to write")
    args = p.parse_args()
    params = load_params(args.params)
    setup_torch(params)
    save_model(args.out, build_model(params["model"], imagenet=True), "imagenet")


if __name__ == "__main__":
    main()
