"""Training step time of SegSort vs the softmax baseline, same network, batch and crop, in one run.

Both objectives train the same network (only the last 1x1 conv differs: embedding vs classifier) on
the same augmented batches of labelled images (tiny-dataset images generated at VOC's image sizes);
the step is forward, loss, backward and SGD update. Their steps alternate, so that a slower spell of a
shared machine falls on both.
The SegSort step adds spherical k-means with location features per image, the label partition and
the vMF-N loss against the batch's and the memory bank's prototypes. Prints both times and their ratio
(issue target on GPU: at most 1.15x); each step's working memory (its peak above the memory held
before it: activations, gradients, the loss's matrices; on a GPU of allocated tensors, on a CPU of the
process's resident memory) and their difference; the operator calls and host synchronisations of one
step counted with the PyTorch profiler, on the path a GPU takes (the prototype tables sized on the host:
segsort.train.objective_loss's static_shapes): on a CPU those counts are the evidence of what would stall
a GPU. The times are of the device's own path.
With --compile, both objectives' forward and loss run under torch.compile (inductor; the backward
follows), SegSort with the GPU's sizing, which compiles as one graph (tests/test_batched_core.py); the
prototype table's size varies by batch, so its shapes are compiled dynamic, and the first steps, which
compile, are given to the warm-up.

It says each phase and each step as it goes. On a CPU it first trains steps of each objective at a
quarter and at half of the crop's side (a half and the whole for crops under 128), the first of them
profiled: a step's working memory and time grow with the batch's pixels (a + b x crop^2), so they give the
memory and time the full size will need, said before the measurement starts; a size whose estimated peak
exceeds 90 % of the memory available (or --max-memory) is refused in one line, naming a crop that fits.

    python benchmarks/train_step.py --network pspnet_resnet101 --crop 480 --batch 8      # GPU, paper size
    python benchmarks/train_step.py --network pspnet_resnet101 --crop 224 --batch 4 --steps 3 --warmup 1  # CPU
    python benchmarks/train_step.py                                                        # CPU, tiny size
    python benchmarks/train_step.py --compile --warmup 5                                   # torch.compile
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from segsort.data import class_names
from segsort.data.tiny import generate_tiny_dataset
from segsort.data.voc import VOCLayout
from segsort.models import build_model, network_config
from segsort.profiling import available_memory, count_operators, peak_meter
from segsort.stage import load_params
from segsort.train import (batch_indices, image_frame_grid, make_batch, make_optimizer, memory_bank,
                           objective_loss)

REPO = Path(__file__).resolve().parents[1]
# Labelled images of PASCAL VOC's sizes (sides of 375 to 500 pixels), generated like the tiny dataset.
IMAGES = {"num_train": 16, "num_train_aug": 16, "num_val": 1, "min_size": 375, "max_size": 500}
GIB = 2 ** 30
LABELS = {"softmax": "softmax", "supervised": "SegSort"}
MARGIN = 0.9  # of the memory available, for the estimate's error (within 10 % of the measured peak on a CPU)


def say(text: str) -> None:
    """Progress, printed at once: a step of a large network on a CPU takes minutes."""
    print(text, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model, optimizer, objective: str, batch, num_classes: int, params: dict, bank,
               static_shapes: bool | None = None, loss_of=objective_loss) -> None:
    loss = loss_of(model, objective, batch, num_classes, params["segsort"], bank, static_shapes=static_shapes)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


class Run:
    """One objective's training of the benchmarked network: its model, optimizer and memory bank, its
    batches (each made from its step alone), and the times and working memory of its steps."""

    def __init__(self, objective: str, args, params: dict, dataset: VOCLayout, device: torch.device):
        self.objective, self.args, self.params, self.dataset, self.device = objective, args, params, dataset, device
        self.peak = peak_meter(device)
        torch.manual_seed(0)
        head = "softmax" if objective == "softmax" else "segsort"
        self.model = build_model(network_config(params["networks"][args.network], head, params["embedding_dim"],
                                                dataset.num_classes)).to(device).train()
        self.optimizer = make_optimizer(self.model, 1e-3, params["optimizer"])
        self.bank = memory_bank(objective, params["segsort"])
        self.loss_of = torch.compile(objective_loss, dynamic=True) if args.compile else objective_loss
        self.static_shapes = True if args.compile else args.static_shapes or None
        self.seconds, self.working_gib = [], []

    def batch_of(self, step: int, crop: int | None = None):
        indices = batch_indices(step, self.args.batch, len(self.dataset), seed=0)
        return make_batch(self.dataset, indices, step, 0, crop or self.args.crop, self.params["optimizer"],
                          grid=image_frame_grid(self.objective, self.params["segsort"]),
                          grid_blocks=self.params["segsort"]["grid_blocks"]).to(self.device)

    def step(self, step: int, timed: bool, crop: int | None = None) -> tuple[float, int]:
        """One training step (at `crop`, default --crop): its seconds and its working memory, the peak above
        the memory held before it (activations, gradients, the loss's matrices: what the objective adds to
        the weights; on a GPU allocated tensors, on a CPU the process's resident memory); kept if timed."""
        batch = self.batch_of(step, crop)
        before = self.peak.start()  # on a GPU, after a synchronisation
        tic = time.perf_counter()
        train_step(self.model, self.optimizer, self.objective, batch, self.dataset.num_classes, self.params,
                   self.bank, self.static_shapes, self.loss_of)
        synchronize(self.device)
        seconds, working = time.perf_counter() - tic, self.peak.stop() - before
        if timed:
            self.seconds.append(seconds)
            self.working_gib.append(working / GIB)
        return seconds, working

    def counts(self, step: int, crop: int | None = None) -> tuple[int, int]:
        """Operator calls and host syncs of one more step, on the path a GPU takes (static shapes, eager)."""
        batch = self.batch_of(step, crop)
        return count_operators(lambda: train_step(self.model, self.optimizer, self.objective, batch,
                                                  self.dataset.num_classes, self.params, self.bank,
                                                  static_shapes=True))


def duration(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds < 90 else f"{seconds / 60:.0f} minutes"


def through(small: tuple[int, float], large: tuple[int, float]) -> tuple[float, float]:
    """(a, b) of the line a + b x crop^2 through two (crop, value) points, b at least 0."""
    slope = max(large[1] - small[1], 0) / (large[0] ** 2 - small[0] ** 2)
    return small[1] - slope * small[0] ** 2, slope


def at(line: tuple[float, float], crop: int) -> float:
    return line[0] + line[1] * crop ** 2


def probe_crops(crop: int) -> tuple[int, int]:
    """The two smaller crops a CPU's estimate is extrapolated from."""
    return (crop // 4, crop // 2) if crop >= 128 else (crop // 2, crop)


def cpu_estimate(runs: dict, args) -> None:
    """On a CPU, before the measurement: say the memory and time the full size will need, extrapolated from
    one step of each objective at each of two smaller crops (working memory and time grow with the batch's
    pixels: a + b x crop^2) and what profiling a step adds, or exit with one line if that exceeds the memory
    available (--max-memory)."""
    small, large = probe_crops(args.crop)
    say(f"estimating memory and time on this CPU from steps at crops {small} and {large}")
    peaks, seconds = [], 0.0
    for objective, run in runs.items():
        # A first step, profiled as the measurement's last one is: it makes the optimizer's momentum buffers and
        # loads the profiler's libraries (both then in the memory held), and shows what profiling adds.
        before = run.peak.start()
        run.counts(0, crop=small)
        profiled = run.peak.stop() - before
        run.step(0, timed=False, crop=small)  # the unprofiled path's first step is slower
        (time_small, low), (time_large, high) = (run.step(0, timed=False, crop=crop) for crop in (small, large))
        say(f"  {LABELS[objective]}: {low / GIB:.2f} GiB and {duration(time_small)} a step at crop {small} "
            f"({profiled / GIB:.2f} GiB profiled), {high / GIB:.2f} GiB and {duration(time_large)} at crop {large}")
        peaks.append((through((small, low), (large, high)), max(profiled - low, 0)))
        seconds += at(through((small, time_small), (large, time_large)), args.crop)
    held, available = runs["supervised"].peak.start(), available_memory()
    limit = args.max_memory * GIB if args.max_memory else None if available is None else held + available

    def peak_at(crop: int) -> float:
        return held + max(at(line, crop) + profiling for line, profiling in peaks)

    peak = peak_at(args.crop)
    size = f"network {args.network}, crop {args.crop}, batch {args.batch}"
    allowed = "allowed (--max-memory)" if args.max_memory else "available"
    if limit is not None and peak > MARGIN * limit:
        fits = next((crop for crop in range(args.crop // 16 * 16, 31, -16) if peak_at(crop) <= MARGIN * limit), None)
        sys.exit(f"error: {size} needs about {peak / GIB:.1f} GiB on this CPU, more than {MARGIN:.0%} of the "
                 f"{limit / GIB:.1f} GiB {allowed}: give a smaller "
                 + (f"--crop (about {fits} fits) or --batch" if fits else "--batch"))
    steps = args.warmup + args.steps + 1  # and the profiled step
    say(f"{size}: about {peak / GIB:.1f} GiB at the peak ({held / GIB:.1f} GiB held before a step)"
        + ("" if limit is None else f" of the {limit / GIB:.1f} GiB {allowed}")
        + f"; about {duration(seconds * steps)} for {steps} steps of each objective")


def measure(args, params: dict, dataset: VOCLayout, device: torch.device) -> dict:
    """Both objectives' steps interleaved, step by step (in alternating order), so that a slower spell of the
    machine falls on both: the median seconds of args.steps steps after args.warmup untimed ones, the
    largest working memory, and the operator calls and host syncs of one step."""
    say(f"building two {args.network} networks (softmax, SegSort)")
    runs = {objective: Run(objective, args, params, dataset, device) for objective in ("softmax", "supervised")}
    if device.type == "cpu":
        cpu_estimate(runs, args)
    for step in range(args.warmup + args.steps):
        done = {}
        for objective, run in (runs.items() if step % 2 == 0 else reversed(runs.items())):
            done[objective] = run.step(step, timed=step >= args.warmup)
        say(f"step {step + 1} of {args.warmup + args.steps} ({'timed' if step >= args.warmup else 'warm-up'}): "
            + ", ".join(f"{LABELS[objective]} {seconds * 1000:.0f} ms, {working / GIB:.2f} GiB"
                        for objective, (seconds, working) in done.items()))
    results = {}
    for objective, run in runs.items():
        say(f"counting the operator calls of one {LABELS[objective]} step (PyTorch profiler)")
        operators, syncs = run.counts(args.warmup + args.steps)
        results[objective] = {"seconds": sorted(run.seconds)[len(run.seconds) // 2], "operators": operators,
                              "syncs": syncs, "working_gib": max(run.working_gib)}
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="lite0_pyramid", help="a network of params.yaml `networks`")
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per objective")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--static-shapes", action="store_true",
                        help="time SegSort with the prototype tables sized on the host, as on a GPU (the default "
                             "on a CPU sizes them exactly)")
    parser.add_argument("--max-memory", type=float, metavar="GIB",
                        help="on a CPU, refuse a size whose estimated peak exceeds this many GiB (default: the "
                             "memory this process holds and the machine has available)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the forward pass and loss of both objectives (SegSort with the GPU's "
                             "sizing); the operator and sync counts stay those of the eager step")
    args = parser.parse_args()

    params = load_params(REPO / "params.yaml")
    if args.network not in params["networks"]:
        parser.error(f"--network must be one of {sorted(params['networks'])}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tiny"
        say(f"generating {IMAGES['num_train_aug']} labelled images of VOC's sizes")
        generate_tiny_dataset(root, {**params["tiny"], **IMAGES}, seed=0)
        dataset = VOCLayout(root, "train", len(class_names("tiny")))
        results = measure(args, params, dataset, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"network {args.network}, crop {args.crop}, batch {args.batch}, device {name}"
          + (", torch.compile" if args.compile else ""))
    for objective, label in LABELS.items():
        result = results[objective]
        print(f"{label:8} step: {result['seconds'] * 1000:.1f} ms (median of {args.steps}), working memory "
              f"{result['working_gib']:.2f} GiB; one step: {result['operators']} operator calls, "
              f"{result['syncs']} host syncs")
    print(f"ratio SegSort / softmax: {results['supervised']['seconds'] / results['softmax']['seconds']:.3f}")
    extra = results["supervised"]["working_gib"] - results["softmax"]["working_gib"]
    print(f"memory SegSort - softmax: {extra:+.2f} GiB")


if __name__ == "__main__":
    main()
