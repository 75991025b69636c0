"""Stage: train one run of params.yaml: supervised_runs (SegSort, vMF-N), unsupervised_runs (SegSort,
vMF on pseudo-segments) or softmax_runs (the cross-entropy baseline).

Runs as one process, or as several under torchrun (params.yaml `train_launcher`): data parallel, one
process per GPU, the SegSort loss over the prototypes of the global batch (segsort/distributed.py).
"""
from pathlib import Path

from segsort.checkpoint import load_model_with_head, save_model
from segsort.data import class_names, hidden_class
from segsort.data.voc import VOCLayout
from segsort.distributed import rank_and_size, setup_from_environment
from segsort.io import DataError
from segsort.stage import load_params, log_device, parser, setup_torch, stage_main
from segsort.train import RUN_OBJECTIVES, train


@stage_main
def main():
    p = parser(__doc__)
    p.add_argument("--run", required=True, help="name of the run in params.yaml")
    p.add_argument("--init", required=True, type=Path, help="checkpoint to start from")
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--segments", type=Path, help="pseudo-segment folder (unsupervised runs)")
    p.add_argument("--model-out", required=True, type=Path, help="trained model checkpoint to write")
    p.add_argument("--train-log", required=True, type=Path, help="per-step training log (CSV) to write")
    p.add_argument("--tensorboard", required=True, type=Path, help="folder for the TensorBoard events")
    p.add_argument("--hide-class", action="store_true",
                   help="train with the pixels of the dataset's hidden class (params.yaml hidden_class) void")
    args = p.parse_args()
    params = load_params(args.params, args.set)
    setup_torch(params)
    device = log_device(setup_from_environment())

    groups = [group for group in RUN_OBJECTIVES if args.run in params[group]]
    if len(groups) != 1:
        raise DataError(f"run {args.run!r} must be in exactly one of {list(RUN_OBJECTIVES)}, not in {groups}")
    objective, run = RUN_OBJECTIVES[groups[0]], params[groups[0]][args.run]
    if objective == "unsupervised" and args.segments is None:
        raise DataError(f"unsupervised run {args.run!r} needs --segments")

    hidden = hidden_class(params) if args.hide_class else None
    if hidden is not None and objective == "unsupervised":
        raise DataError(f"--hide-class: run {args.run!r} is unsupervised; it sees no labels to hide")
    dataset = VOCLayout(args.dataset_root, run["split"], len(class_names(params["dataset"], params["datasets"])),
                        with_labels=objective != "unsupervised",
                        segments_dir=args.segments if objective == "unsupervised" else None,
                        hidden_classes=() if hidden is None else (hidden[1],))
    head = "softmax" if objective == "softmax" else "segsort"
    model, fresh = load_model_with_head(args.init, head, params["networks"][run["network"]])
    if fresh:
        print(f"{args.run}: fresh {head} head ({', '.join(fresh)}) on {args.init}")
    if run["schedule"] not in params["schedules"]:
        raise DataError(f"run {args.run!r} needs schedule {run['schedule']!r}, which the preset of dataset "
                        f"{params['dataset']!r} does not define")
    schedule = params["schedules"][run["schedule"]]
    # Everything that decides the result: a resume state made with anything else is ignored.
    config = {"run": run, "objective": objective, "schedule": schedule, "optimizer": params["optimizer"],
              "segsort": params["segsort"], "seed": params["seed"], "init": str(args.init),
              "mixed_precision": params["mixed_precision"], **({"hidden_class": hidden} if hidden else {})}
    # Beside the model it will become: runs of one name with other --set values never share a resume state.
    resume = args.model_out.with_suffix(".resume.pt")
    train(model, dataset, objective, schedule, params["optimizer"], params["segsort"], params["seed"],
          log_path=args.train_log, resume_path=resume,
          checkpoint_every=params["checkpoint_every"], config=config, device=device,
          mixed_precision=params["mixed_precision"], tensorboard_dir=args.tensorboard,
          data_threads=params["data_threads"] if device.type == "cuda" else 0)
    if rank_and_size()[0] == 0:
        save_model(args.model_out, model, args.run if hidden is None else f"{args.run}_without_{hidden[0]}")
        resume.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
