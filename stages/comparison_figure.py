"""Stage: Figures 4 and 14 of the paper: validation images segmented by a softmax model and by the SegSort
model of the same network, side by side with the ground truth (params `comparison_figures`).

Reads, for each pair [softmax model, SegSort model] of the figure, MODELS_DIR/<name>/model.pt of both and
BANKS_DIR/<SegSort model>.h5, and nothing else of those folders."""
from pathlib import Path

from segsort.bank import read_model_bank
from segsort.checkpoint import load_model
from segsort.comparison import check_pair, compare_image, comparison_figure
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.inference import InferenceConfig
from segsort.io import DataError, atomic_path
from segsort.stage import add_device_argument, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--figure", required=True, help="entry of params comparison_figures, e.g. fig4_softmax_vs_segsort")
    p.add_argument("--models-dir", required=True, type=Path, help="folder of <model name>/model.pt")
    p.add_argument("--banks-dir", required=True, type=Path, help="folder of <SegSort model name>.h5")
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    add_device_argument(p)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    section = params["comparison_figures"]
    if args.figure not in section:
        raise DataError(f"{args.params}: comparison_figures has no figure {args.figure!r}")
    figure = section[args.figure]
    count = figure["images_per_pair"]
    names = class_names(params["dataset"], params["datasets"])
    config = InferenceConfig.from_params(params)
    dataset = VOCLayout(args.dataset_root, params["evaluation"]["eval_split"], len(names))
    indices = range(figure["first_image"], figure["first_image"] + count)
    if indices.stop > len(dataset):
        raise DataError(f"{args.dataset_root}: split {dataset.split} has {len(dataset)} images, "
                        f"{args.figure} shows images {indices.start}..{indices.stop - 1}")
    device = stage_device(args.device)
    rows = []
    for softmax_name, segsort_name in figure["pairs"]:
        softmax_path = args.models_dir / softmax_name / "model.pt"
        segsort_path = args.models_dir / segsort_name / "model.pt"
        softmax_model, segsort_model = load_model(softmax_path).to(device), load_model(segsort_path).to(device)
        check_pair(softmax_path, softmax_model.config, segsort_path, segsort_model.config)
        bank = read_model_bank(args.banks_dir / f"{segsort_name}.h5", segsort_path, segsort_model,
                               params["dataset"], datasets=params["datasets"]).to(device)
        rows += [compare_image(softmax_model, segsort_model, bank, dataset[i], config, len(names)) for i in indices]
    title = (f"{args.figure}: softmax vs SegSort, {params['dataset']} {dataset.split}\n"
             "mIoU (%) of each image over the classes in its ground truth or prediction")
    with atomic_path(args.out) as tmp:
        comparison_figure(rows, names, tmp, title)
    print(f"{args.out}: {len(rows)} images, {len(figure['pairs'])} pairs")


if __name__ == "__main__":
    main()
