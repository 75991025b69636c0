"""Training step time of SegSort vs the softmax baseline, same network, batch and crop, in one run.

Both objectives train the same network (only the last 1x1 conv differs: embedding vs classifier) on
the same augmented batches of labelled images (tiny-dataset images generated at VOC's image sizes);
the step is forward, loss, backward and SGD update. Their steps alternate, so that a slower spell of a
shared machine falls on both.
The SegSort step adds spherical k-means with location features per image, the label partition and
the vMF-N loss against the batch's and the memory bank's prototypes. Prints both times and their ratio
(issue target on GPU: at most 1.15x); on a GPU, each step's working memory (its peak above the memory
held before it: activations, gradients, the loss's matrices) and their difference; on any device, the
operator calls and host synchronisations of one step counted with the PyTorch profiler, on the path a
GPU takes (the prototype tables sized on the host: segsort.train.objective_loss's static_shapes): on a
CPU those counts are the evidence of what would stall a GPU. The times are of the device's own path.
With --compile, both objectives' forward and loss run under torch.compile (inductor; the backward
follows), SegSort with the GPU's sizing, which compiles as one graph (tests/test_batched_core.py); the
prototype table's size varies by batch, so its shapes are compiled dynamic, and the first steps, which
compile, are given to the warm-up.

    python benchmarks/train_step.py --network pspnet_resnet101 --crop 480 --batch 8      # GPU, paper size
    python benchmarks/train_step.py                                                        # CPU, tiny size
    python benchmarks/train_step.py --compile --warmup 5                                   # torch.compile
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from segsort.data import class_names
from segsort.data.tiny import generate_tiny_dataset
from segsort.data.voc import VOCLayout
from segsort.models import build_model, network_config
from segsort.profiling import count_operators
from segsort.stage import load_params
from segsort.train import (batch_indices, image_frame_grid, make_batch, make_optimizer, memory_bank,
                           objective_loss)

REPO = Path(__file__).resolve().parents[1]
# Labelled images of PASCAL VOC's sizes (sides of 375 to 500 pixels), generated like the tiny dataset.
IMAGES = {"num_train": 16, "num_train_aug": 16, "num_val": 1, "min_size": 375, "max_size": 500}


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
        torch.manual_seed(0)
        head = "softmax" if objective == "softmax" else "segsort"
        self.model = build_model(network_config(params["networks"][args.network], head, params["embedding_dim"],
                                                dataset.num_classes)).to(device).train()
        self.optimizer = make_optimizer(self.model, 1e-3, params["optimizer"])
        self.bank = memory_bank(objective, params["segsort"])
        self.loss_of = torch.compile(objective_loss, dynamic=True) if args.compile else objective_loss
        self.static_shapes = True if args.compile else args.static_shapes or None
        self.seconds, self.working_gib = [], []

    def batch_of(self, step: int):
        indices = batch_indices(step, self.args.batch, len(self.dataset), seed=0)
        return make_batch(self.dataset, indices, step, 0, self.args.crop, self.params["optimizer"],
                          grid=image_frame_grid(self.objective, self.params["segsort"])).to(self.device)

    def step(self, step: int, timed: bool) -> None:
        """One training step; if timed, its seconds and, on a GPU, its peak memory above what was allocated
        before it (activations, gradients, the loss's matrices: what the objective adds to the weights)."""
        batch = self.batch_of(step)
        synchronize(self.device)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
        tic = time.perf_counter()
        train_step(self.model, self.optimizer, self.objective, batch, self.dataset.num_classes, self.params,
                   self.bank, self.static_shapes, self.loss_of)
        synchronize(self.device)
        if timed:
            self.seconds.append(time.perf_counter() - tic)
            if self.device.type == "cuda":
                self.working_gib.append((torch.cuda.max_memory_allocated(self.device) - before) / 2 ** 30)

    def counts(self, step: int) -> tuple[int, int]:
        """Operator calls and host syncs of one more step, on the path a GPU takes (static shapes, eager)."""
        batch = self.batch_of(step)
        return count_operators(lambda: train_step(self.model, self.optimizer, self.objective, batch,
                                                  self.dataset.num_classes, self.params, self.bank,
                                                  static_shapes=True))


def measure(args, params: dict, dataset: VOCLayout, device: torch.device) -> dict:
    """Both objectives' steps interleaved, step by step (in alternating order), so that a slower spell of the
    machine falls on both: the median seconds of args.steps steps after args.warmup untimed ones, the
    largest working memory, and the operator calls and host syncs of one step."""
    runs = {objective: Run(objective, args, params, dataset, device) for objective in ("softmax", "supervised")}
    for step in range(args.warmup + args.steps):
        for run in (runs.values() if step % 2 == 0 else reversed(runs.values())):
            run.step(step, timed=step >= args.warmup)
    results = {}
    for objective, run in runs.items():
        operators, syncs = run.counts(args.warmup + args.steps)
        results[objective] = {"seconds": sorted(run.seconds)[len(run.seconds) // 2], "operators": operators,
                              "syncs": syncs, "working_gib": max(run.working_gib) if run.working_gib else None}
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
        generate_tiny_dataset(root, {**params["tiny"], **IMAGES}, seed=0)
        dataset = VOCLayout(root, "train", len(class_names("tiny")))
        results = measure(args, params, dataset, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"network {args.network}, crop {args.crop}, batch {args.batch}, device {name}"
          + (", torch.compile" if args.compile else ""))
    for objective, label in (("softmax", "softmax"), ("supervised", "SegSort")):
        result = results[objective]
        memory = f", working memory {result['working_gib']:.2f} GiB" if result["working_gib"] is not None else ""
        print(f"{label:8} step: {result['seconds'] * 1000:.1f} ms (median of {args.steps}){memory}; one step: "
              f"{result['operators']} operator calls, {result['syncs']} host syncs")
    print(f"ratio SegSort / softmax: {results['supervised']['seconds'] / results['softmax']['seconds']:.3f}")
    if device.type == "cuda":
        extra = results["supervised"]["working_gib"] - results["softmax"]["working_gib"]
        print(f"memory SegSort - softmax: {extra:+.2f} GiB")


if __name__ == "__main__":
    main()
