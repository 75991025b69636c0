"""Training step time of SegSort vs the softmax baseline, same network, batch and crop, in one run.

Both objectives train the same network (only the last 1x1 conv differs: embedding vs classifier) on
the same augmented batches of labelled images (tiny-dataset images generated at VOC's image sizes);
the step is forward, loss, backward and SGD update.
The SegSort step adds spherical k-means with location features per image, the label partition and
the vMF-N loss against the batch's and the memory bank's prototypes. Prints both times and their ratio
(issue target on GPU: at most 1.15x), the peak GPU memory, and, on any device, the operator calls and
host synchronisations of one step counted with the PyTorch profiler, on the path a GPU takes (the
prototype tables sized on the host: segsort.train.objective_loss's static_shapes): on a CPU those counts
are the evidence of what would stall a GPU. The times are of the device's own path.

    python benchmarks/train_step.py --network pspnet_resnet101 --crop 480 --batch 8      # GPU, paper size
    python benchmarks/train_step.py                                                        # CPU, tiny size
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
               static_shapes: bool | None = None) -> None:
    loss = objective_loss(model, objective, batch, num_classes, params["segsort"], bank,
                          static_shapes=static_shapes)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def measure(objective: str, args, params: dict, dataset: VOCLayout, device: torch.device) -> dict:
    """Median seconds per training step over args.steps steps after args.warmup untimed ones, the peak
    GPU memory, and the operator calls and host syncs of one more step, profiled."""
    head = "softmax" if objective == "softmax" else "segsort"
    torch.manual_seed(0)
    model = build_model(network_config(params["networks"][args.network], head, params["embedding_dim"],
                                       dataset.num_classes)).to(device).train()
    optimizer = make_optimizer(model, 1e-3, params["optimizer"])
    bank = memory_bank(objective, params["segsort"])

    def batch_of(step: int):
        indices = batch_indices(step, args.batch, len(dataset), seed=0)
        return make_batch(dataset, indices, step, 0, args.crop, params["optimizer"],
                          grid=image_frame_grid(objective, params["segsort"])).to(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.warmup + args.steps):
        batch = batch_of(step)
        synchronize(device)
        tic = time.perf_counter()
        train_step(model, optimizer, objective, batch, dataset.num_classes, params, bank,
                   static_shapes=args.static_shapes or None)
        synchronize(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - tic)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    batch = batch_of(args.warmup + args.steps)
    # Counted on the path a GPU takes (static shapes), whatever the device.
    operators, syncs = count_operators(lambda: train_step(model, optimizer, objective, batch, dataset.num_classes,
                                                          params, bank, static_shapes=True))
    return {"seconds": sorted(times)[len(times) // 2], "peak_gib": peak, "operators": operators, "syncs": syncs}


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
    args = parser.parse_args()

    params = load_params(REPO / "params.yaml")
    if args.network not in params["networks"]:
        parser.error(f"--network must be one of {sorted(params['networks'])}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tiny"
        generate_tiny_dataset(root, {**params["tiny"], **IMAGES}, seed=0)
        dataset = VOCLayout(root, "train", len(class_names("tiny")))
        results = {objective: measure(objective, args, params, dataset, device)
                   for objective in ("softmax", "supervised")}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"network {args.network}, crop {args.crop}, batch {args.batch}, device {name}")
    for objective, label in (("softmax", "softmax"), ("supervised", "SegSort")):
        result = results[objective]
        memory = f", peak {result['peak_gib']:.2f} GiB" if result["peak_gib"] is not None else ""
        print(f"{label:8} step: {result['seconds'] * 1000:.1f} ms (median of {args.steps}){memory}; one step: "
              f"{result['operators']} operator calls, {result['syncs']} host syncs")
    print(f"ratio SegSort / softmax: {results['supervised']['seconds'] / results['softmax']['seconds']:.3f}")


if __name__ == "__main__":
    main()
