"""Stage: predict the test split (params `evaluation.test_split`) with a model and write the package its
evaluation server takes (a zip of label PNGs); Table 7 points to it."""
from pathlib import Path

from segsort.bank import read_model_bank
from segsort.checkpoint import load_model
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.inference import InferenceConfig, model_device, segsort_labels, softmax_labels
from segsort.io import DataError
from segsort.stage import add_device_argument, load_params, parser, setup_torch, stage_device, stage_main
from segsort.submission import SERVERS, write_submission


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--model", required=True, type=Path, help="model checkpoint")
    p.add_argument("--bank", type=Path, help="HDF5 prototype bank of the same model (SegSort models)")
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="zip to write")
    add_device_argument(p)
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    names = class_names(params["dataset"], params["datasets"])
    config = InferenceConfig.from_params(params)
    model = load_model(args.model).to(stage_device(args.device))
    softmax = model.config["head"] == "softmax"
    if softmax == (args.bank is not None):
        raise DataError(f"{args.model}: a {model.config['head']} model is packaged "
                        f"{'without' if softmax else 'with'} --bank")
    dataset = VOCLayout(args.dataset_root, params["evaluation"]["test_split"], len(names), with_labels=False)
    if softmax:
        def predict(sample):
            return softmax_labels(model, sample.image, config)
    else:
        bank = read_model_bank(args.bank, args.model, model, params["dataset"], datasets=params["datasets"]).to(model_device(model))

        def predict(sample):
            return segsort_labels(model, sample.image, bank.prototypes, bank.labels, config, len(names),
                                  "embedding", None)
    count = write_submission(predict, dataset, params["dataset"], args.out)
    print(f"{args.out}: {count} test images of {params['dataset']} for {SERVERS[params['dataset']]}")


if __name__ == "__main__":
    main()
