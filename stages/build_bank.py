"""Stage: the kNN prototype bank of a model over the labelled training split, in HDF5 with provenance."""
import json
from pathlib import Path

from segsort.bank import bank_identity, params_json
from segsort.checkpoint import load_model
from segsort.data import class_names, hidden_class
from segsort.data.voc import VOCLayout
from segsort.evaluate import build_bank
from segsort.stage import add_segmentation_arguments, load_params, parser, setup_torch, stage_device, stage_main


@stage_main
def main():
    p = parser(__doc__)
    add_segmentation_arguments(p)
    p.add_argument("--out", required=True, type=Path, help="HDF5 bank to write")
    p.add_argument("--hide-class", action="store_true",
                   help="leave out the segments of the dataset's hidden class (params.yaml hidden_class)")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    split = params["evaluation"]["bank_split"]
    names = class_names(params["dataset"], params["datasets"])
    hidden = (hidden_class(params)[1],) if args.hide_class else ()
    dataset = VOCLayout(args.dataset_root, split, len(names), with_labels=bool(names), segments_dir=args.segments,
                        hidden_classes=hidden)
    attrs = {**bank_identity(args.model, args.features, args.segments, params["dataset"], params["datasets"]), "split": split,
             "class_names": json.dumps(names), "dataset_root": str(args.dataset_root),
             "params": params_json({"segsort": params["segsort"], "bank_split": split,
                                    "kmeans_iterations": params["inference"]["kmeans_iterations"],
                                    "bank_locations": params["inference"]["bank_locations"]})}
    # the training images' k-means runs as the test images' does (the inference section), on the training grid
    count = build_bank(load_model(args.model).to(stage_device(args.device)), dataset, args.features,
                       tuple(params["segsort"]["grid"]), params["inference"]["kmeans_iterations"], args.out, attrs,
                       params["segsort"]["grid_blocks"], params["inference"]["bank_locations"])
    print(f"{args.out}: {count} prototypes from {len(dataset)} images")


if __name__ == "__main__":
    main()
