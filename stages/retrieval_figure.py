"""Stage: Figures 5 and 7 of the paper: segments of the first validation images, each next to the training
segments it retrieved from the model's prototype bank (what made its label)."""
from pathlib import Path

from segsort.bank import read_model_bank
from segsort.checkpoint import load_model
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.explain import explain_image, retrieval_figure
from segsort.inference import InferenceConfig, model_device
from segsort.io import atomic_path
from segsort.stage import add_device_argument, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--model", required=True, type=Path, help="SegSort model checkpoint")
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--bank", required=True, type=Path, help="HDF5 prototype bank of the same model")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")
    add_device_argument(p)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    cfg = params["retrieval_figures"]
    names = class_names(params["dataset"], params["datasets"])
    model = load_model(args.model).to(stage_device(args.device))
    bank = read_model_bank(args.bank, args.model, model, params["dataset"], datasets=params["datasets"]).to(model_device(model))
    dataset = VOCLayout(args.dataset_root, params["evaluation"]["eval_split"], len(names))
    examples = []
    for index in range(min(cfg["images"], len(dataset))):
        sample = dataset[index]
        queries = explain_image(model, sample.image, bank, InferenceConfig.from_params(params), len(names),
                                cfg["segments"], cfg["neighbours"])
        examples.append((sample.image_id, sample.image, queries))
    with atomic_path(args.out) as tmp:
        retrieval_figure(examples, args.dataset_root, names, tmp,
                         f"{args.model.parent.name}: validation segments and the training segments they retrieved")
    print(f"{args.out}: {sum(len(q) for _, _, q in examples)} segments of {len(examples)} images")


if __name__ == "__main__":
    main()
