"""Stage: the starting model: ImageNet-pretrained backbone, freshly initialised decoder and SegSort head."""
from pathlib import Path

from segsort.checkpoint import save_model
from segsort.data import class_names
from segsort.models import build_model, network_config
from segsort.stage import load_params, parser, setup_torch, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--out", required=True, type=Path, help="model checkpoint to write")
    args = p.parse_args()
    params = load_params(args.params)
    setup_torch(params)
    config = network_config(params["model"], "segsort", len(class_names(params["dataset"])))
    save_model(args.out, build_model(config, imagenet=True), "imagenet")


if __name__ == "__main__":
    main()
