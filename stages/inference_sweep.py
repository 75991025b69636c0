"""Stage: the inference sweep (Table 4's mIoU, Figure 13). A SegSort model's evaluation with every number
of k-means iterations x k of kNN of params `inference_sweep`; each setting's metrics JSON is the one
stages/evaluate.py writes with `--set inference.kmeans_iterations=.. --set inference.knn_k=..`, but the
network runs once per image for all settings."""
from dataclasses import replace
from pathlib import Path

from segsort.bank import read_model_bank
from segsort.checkpoint import load_model
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.evaluate import evaluate_sweep, metrics_record
from segsort.inference import InferenceConfig, model_device
from segsort.io import write_json
from segsort.stage import add_segmentation_arguments, load_params, parser, setup_torch, stage_device, stage_main


def sweep_settings(params: dict) -> list[tuple[int, int]]:
    """(k-means iterations, k) of every setting, in the order of params `inference_sweep`."""
    sweep = params["inference_sweep"]
    return [(iterations, k) for iterations in sweep["kmeans_iterations"] for k in sweep["knn_k"]]


@stage_main
def main():
    p = parser(__doc__)
    add_segmentation_arguments(p)
    p.add_argument("--bank", required=True, type=Path, help="HDF5 prototype bank of the same model")
    p.add_argument("--out-dir", required=True, type=Path, help="folder of the <iterations>-<k>.json files")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    names = class_names(params["dataset"], params["datasets"])
    model = load_model(args.model).to(stage_device(args.device))
    dataset = VOCLayout(args.dataset_root, params["evaluation"]["eval_split"], len(names),
                        segments_dir=args.segments)
    bank = read_model_bank(args.bank, args.model, model, params["dataset"], args.features, args.segments,
                           params["datasets"]).to(model_device(model))
    settings = sweep_settings(params)
    base = InferenceConfig.from_params(params)
    configs = [replace(base, kmeans_iterations=iterations, knn_k=k) for iterations, k in settings]
    segsort_settings = {"grid": params["segsort"]["grid"], "embedding_dim": model.config["embedding_dim"]}
    for (iterations, k), scores in zip(settings, evaluate_sweep(model, dataset, bank, args.features, configs)):
        out = args.out_dir / f"{iterations}-{k}.json"
        inference = {**params["inference"], "kmeans_iterations": iterations, "knn_k": k}
        write_json(out, metrics_record(args.model.parent.name, dataset.split, inference, segsort_settings, scores,
                                       names))
        print(f"{out}: mIoU {100 * scores['miou']:.2f}, boundary F {100 * scores['boundary_f']:.2f}")


if __name__ == "__main__":
    main()
