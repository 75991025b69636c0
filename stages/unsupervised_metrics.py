"""Stage: score a model's frozen per-pixel features by the protocols of later unsupervised-segmentation
papers (PiCIE, STEGO): Hungarian-matched k-means cluster mIoU on the evaluation split, and a linear probe
trained on the labelled bank split and scored on the evaluation split."""
from pathlib import Path

from segsort.checkpoint import load_model
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.io import DataError, write_json
from segsort.stage import add_segmentation_arguments, load_params, parser, setup_torch, stage_device, stage_main
from segsort.unsupervised_metrics import evaluate_protocols, protocol_config


@stage_main
def main():
    p = parser(__doc__)
    add_segmentation_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    args = p.parse_args()
    if args.segments is not None:
        raise DataError(f"{args.segments}: both protocols work per pixel; --segments has no use here")
    params = load_params(args.params, args.set)
    setup_torch(params)
    evaluation = params["evaluation"]
    try:
        cfg = protocol_config(evaluation.get("unsupervised_protocols"))
    except ValueError as err:
        raise DataError(f"{args.params}: {err}") from err
    names = class_names(params["dataset"], params["datasets"])
    model = load_model(args.model).to(stage_device(args.device))
    if args.features == "embedding" and model.config["head"] != "segsort":
        raise DataError(f"{args.model}: a {model.config['head']} model has no embedding; use --features backbone")
    train = VOCLayout(args.dataset_root, evaluation["bank_split"], len(names))
    val = VOCLayout(args.dataset_root, evaluation["eval_split"], len(names))
    result = evaluate_protocols(model, train, val, args.features, cfg, params["seed"])
    cluster, probe = result["cluster"], result["probe"]
    write_json(args.out, {
        "model": args.model.parent.name, "features": args.features, "split": val.split, "probe_split": train.split,
        "cluster_miou": cluster["miou"], "cluster_per_class_iou": dict(zip(names, cluster["per_class_iou"])),
        "cluster_pixel_accuracy": cluster["pixel_accuracy"],
        "cluster_to_class": {str(k): names[c] if c >= 0 else None for k, c in enumerate(cluster["mapping"])},
        "probe_miou": probe["miou"], "probe_per_class_iou": dict(zip(names, probe["per_class_iou"])),
        "probe_pixel_accuracy": probe["pixel_accuracy"],
        "num_images": result["num_images"], "num_train_images": result["num_train_images"], "settings": cfg})
    print(f"{args.out}: cluster mIoU {100 * cluster['miou']:.2f}, linear probe mIoU {100 * probe['miou']:.2f}")


if __name__ == "__main__":
    main()
