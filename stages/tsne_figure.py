"""Stage: Figures 9 and 10 of the paper: a t-SNE map of a random sample of a model's bank prototypes, each
shown by its training segment's patch, framed in the colour of its class."""
from pathlib import Path

from segsort.bank import read_model_bank
from segsort.checkpoint import load_model
from segsort.data import class_names
from segsort.io import atomic_path
from segsort.prototype_maps import tsne_canvas, tsne_figure, tsne_layout
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
    cfg = params["prototype_figures"]["tsne"]
    names = class_names(params["dataset"], params["datasets"])
    model = load_model(args.model)
    bank = read_model_bank(args.bank, args.model, model, params["dataset"], datasets=params["datasets"])
    layout = tsne_layout(bank, cfg["samples"], cfg["perplexity"], cfg["canvas_px"] // cfg["patch_px"],
                         params["seed"])
    canvas = tsne_canvas(layout, bank, args.dataset_root, cfg["canvas_px"], cfg["patch_px"])
    with atomic_path(args.out) as tmp:
        tsne_figure(canvas, bank.labels[layout.indices].tolist(), names, tmp,
                    f"{args.model.parent.name}: t-SNE of {layout.sampled} random prototypes of {len(bank)}, "
                    f"{len(layout.indices)} shown where their cell was free")
    print(f"{args.out}: {len(layout.indices)} of {layout.sampled} sampled prototypes placed")


if __name__ == "__main__":
    main()
