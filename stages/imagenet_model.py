"""Stage: the starting model of a network: ImageNet backbone (or a fresh one where the preset's
`imagenet_backbones` does not list it), freshly initialised decoder and SegSort head. Where the preset names
a stand-in for the network (`stand_ins`), the model is the stand-in's."""
from pathlib import Path

from segsort.checkpoint import save_model
from segsort.data import class_names
from segsort.io import DataError
from segsort.models import build_model, network_config
from segsort.stage import load_params, parser, setup_torch, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--network", required=True, help="name of the network in params.yaml `networks`")
    p.add_argument("--out", required=True, type=Path, help="model checkpoint to write")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    if args.network not in params["networks"]:
        raise DataError(f"{args.params}: network {args.network!r} is not one of {sorted(params['networks'])}")
    used = params.get("stand_ins", {}).get(args.network, args.network)  # the network standing in for it on this dataset
    network = params["networks"][used]
    config = network_config(network, "segsort", params["embedding_dim"], len(class_names(params["dataset"], params["datasets"])))
    imagenet = network["backbone"] in params["imagenet_backbones"]
    stand_in = f" (stand-in: {used})" if used != args.network else ""
    print(f"{args.network}{stand_in}: {'ImageNet' if imagenet else 'randomly initialised'} {network['backbone']} backbone")
    save_model(args.out, build_model(config, imagenet=imagenet), f"imagenet_{used}")


if __name__ == "__main__":
    main()
