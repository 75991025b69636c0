"""Stage: segment the evaluation split and score it (mIoU, per-class IoU, pixel accuracy, per-class
boundary precision/recall/F): a SegSort model by kNN against its prototype bank, a softmax model by the
arg max of its class scores."""
from pathlib import Path

from segsort.bank import read_model_bank
from segsort.checkpoint import load_model
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.evaluate import evaluate, evaluate_softmax, metrics_record
from segsort.inference import InferenceConfig, model_device
from segsort.io import DataError, write_json
from segsort.models import network_label
from segsort.stage import add_segmentation_arguments, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    add_segmentation_arguments(p)
    p.add_argument("--bank", type=Path, help="HDF5 prototype bank of the same model (SegSort models)")
    p.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    names = class_names(params["dataset"], params["datasets"])
    config = InferenceConfig.from_params(params)
    model = load_model(args.model).to(stage_device(args.device))
    dataset = VOCLayout(args.dataset_root, params["evaluation"]["eval_split"], len(names),
                        segments_dir=args.segments)
    softmax = model.config["head"] == "softmax"
    if softmax == (args.bank is not None):
        raise DataError(f"{args.model}: a {model.config['head']} model is evaluated "
                        f"{'without' if softmax else 'with'} --bank")
    if softmax:
        scores = evaluate_softmax(model, dataset, config)
    else:
        bank = read_model_bank(args.bank, args.model, model, params["dataset"], args.features,
                               args.segments, params["datasets"]).to(model_device(model))
        scores = evaluate(model, dataset, bank, args.features, config)
    settings = {"network": network_label(model.config)}
    if not softmax:
        settings.update(grid=params["segsort"]["grid"], embedding_dim=model.config["embedding_dim"])
    write_json(args.out, metrics_record(args.model.parent.name, dataset.split, params["inference"], settings,
                                        scores, names))
    print(f"{args.out}: mIoU {100 * scores['miou']:.2f}, boundary F {100 * scores['boundary_f']:.2f}")


if __name__ == "__main__":
    main()
