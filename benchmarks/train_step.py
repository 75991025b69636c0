"""Training step time of SegSort vs the softmax baseline, same network, batch and crop, in one run.

Both objectives train the same network (only the last 1x1 conv differs: embedding vs classifier) on
the same augmented batches of labelled images (tiny-dataset images generated at VOC's image sizes);
the step is forward, loss, backward and SGD update.
The SegSort step adds spherical k-means with location features per image, the label partition and
the vMF-N loss against the batch's and the memory bank's prototypes. Prints both times and their ratio
(issue target on GPU: at most 1.15x).

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
from segsort.stage import load_params
from segsort.train import (batch_indices, image_frame_grid, make_batch, make_optimizer, memory_bank,
                           objective_loss)

REPO = Path(__file__).resolve().parents[1]
# Labelled images of PASCAL VOC's sizes (sides of 375 to 500 pixels), generated like the tiny dataset.
IMAGES = {"num_train": 16, "num_train_aug": 16, "num_val": 1, "min_size": 375, "max_size": 500}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(objective: str, args, params: dict, dataset: VOCLayout, device: torch.device) -> float:
    """Median seconds per training step over args.steps steps, after args.warmup untimed ones."""
    head = "softmax" if objective == "softmax" else "segsort"
    torch.manual_seed(0)
    model = build_model(network_config(params["networks"][args.network], head, params["embedding_dim"],
                                       dataset.num_classes)).to(device).train()
    optimizer = make_optimizer(model, 1e-3, params["optimizer"])
    bank = memory_bank(objective, params["segsort"])
    times = []
    for step in range(args.warmup + args.steps):
        indices = batch_indices(step, args.batch, len(dataset), seed=0)
        batch = make_batch(dataset, indices, step, 0, args.crop, params["optimizer"],
                           grid=image_frame_grid(objective, params["segsort"])).to(device)
        synchronize(device)
        tic = time.perf_counter()
        loss = objective_loss(model, objective, batch, dataset.num_classes, params["segsort"], bank)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - tic)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="lite0_pyramid", help="a network of params.yaml `networks`")
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per objective")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    params = load_params(REPO / "params.yaml")
    if args.network not in params["networks"]:
        parser.error(f"--network must be one of {sorted(params['networks'])}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tiny"
        generate_tiny_dataset(root, {**params["tiny"], **IMAGES}, seed=0)
        dataset = VOCLayout(root, "train", len(class_names("tiny")))
        seconds = {objective: time_steps(objective, args, params, dataset, device)
                   for objective in ("softmax", "supervised")}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"network {args.network}, crop {args.crop}, batch {args.batch}, device {name}")
    print(f"softmax  step: {seconds['softmax'] * 1000:.1f} ms (median of {args.steps})")
    print(f"SegSort  step: {seconds['supervised'] * 1000:.1f} ms (median of {args.steps})")
    print(f"ratio SegSort / softmax: {seconds['supervised'] / seconds['softmax']:.3f}")


if __name__ == "__main__":
    main()
