"""Stage: Figure 8 of the paper: FINCH clusters of a model's foreground bank prototypes, shown by their
training segments' patches: random members of finest-level clusters, then the central members of each
cluster of a coarse level."""
from pathlib import Path

from segsort.bank import read_model_bank
from segsort.checkpoint import load_model
from segsort.data import class_names
from segsort.io import atomic_path
from segsort.prototype_maps import finch_clusters, finch_figure
from segsort.stage import load_params, parser, setup_torch, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--model", required=True, type=Path, help="SegSort model checkpoint")
    p.add_argument("--bank", required=True, type=Path, help="HDF5 prototype bank of the same model")
    p.add_argument("--dataset-root", required=True, type=Path, help="the dataset the bank was made from")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    cfg = params["prototype_figures"]["finch"]
    names = class_names(params["dataset"], params["datasets"])
    model = load_model(args.model)
    bank = read_model_bank(args.bank, args.model, model, params["dataset"], datasets=params["datasets"])
    clusters = finch_clusters(bank, cfg["coarse_clusters"], labelled=bool(names))
    kind = "foreground" if names else "unlabelled"
    print(f"{args.bank}: FINCH on {len(clusters.rows)} {kind} prototypes -> "
          f"{', '.join(map(str, clusters.counts))} clusters per level; coarse partition of "
          f"{clusters.coarse.max() + 1} clusters: {clusters.coarse_origin}")
    with atomic_path(args.out) as tmp:
        finch_figure(clusters, bank, args.dataset_root, cfg, params["seed"], names, tmp,
                     f"{args.model.parent.name}: FINCH on its {len(clusters.rows)} {kind} prototypes")
    print(f"{args.out}: written")


if __name__ == "__main__":
    main()
