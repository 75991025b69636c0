"""Inference latency and memory of SegSort vs softmax, same network and images, in one run (paper supp. Table 4).

One image at a single scale, as in the paper's Table 4 (PSPNet inference at single scale):
  softmax  = forward + bilinear upsampling of the class scores, arg max per pixel;
  SegSort  = forward + upsampling of the unit embedding, spherical k-means with location features
             (grid 5x5: 25 clusters, a fixed number of iterations), then "kNN": segment prototypes, exact
             cosine top-k against the prototype bank, the neighbours' label votes painted on the pixels
             and their arg max.
Both heads sit on one and the same backbone and decoder (shared modules, so the same weights and a
single resident copy of the network). The methods are interleaved: after the warm-up rounds, every
repeat runs every method once on every image, in a fixed order, so load from other processes affects
all alike; times are medians over images x repeats, memory the largest per-run peak.

The bank holds synthetic prototypes (seeded random unit vectors with random labels) of the given sizes:
the paper's 36k and a full VOC train_aug bank of 265k; the cost of exact kNN does not depend on its
content. It is created before each SegSort run (untimed) and freed after it, so only SegSort's memory
holds it. Memory is the total peak including the network: on a GPU torch's max_memory_allocated, on a
CPU the process's peak resident set size (VmHWM, reset through /proc/self/clear_refs before every run;
where that is refused, a 2 ms sampling of the resident size).

Issue target on a GPU: 10 iterations + 21-NN at most 5 % more time and 2 % more memory than softmax.
Timings are printed and written, never checked. On a CPU shared with other processes, --threads 1 is
faster and steadier than several threads that wait for each other at every parallel region.

    python benchmarks/inference_latency.py --device cuda                                  # the paper's setting
    python benchmarks/inference_latency.py --threads 1 --repeats 5 --out reports/benchmarks/inference_latency.csv  # CPU; Table 4 reads it
    python benchmarks/inference_latency.py --network lite0_pyramid --size 128 128 --banks 1000
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from segsort.inference import (class_scores, knn_votes, majority, nearest_prototypes, pixel_features,
                               query_prototypes, segment_image)
from segsort.io import atomic_path
from segsort.models import build_model, network_config
from segsort.profiling import count_operators, peak_meter
from segsort.stage import load_params

REPO = Path(__file__).resolve().parents[1]
MIB = 2 ** 20
COLUMNS = ["method", "bank", "kmeans_iterations", "knn_k", "forward_ms", "kmeans_ms", "knn_ms", "kmeans_pct",
           "knn_pct", "time_ms", "time_vs_softmax", "memory_mib", "memory_vs_softmax", "working_memory_mib",
           "device", "network", "image_size", "images", "repeats", "warmup", "memory_measure", "bank_content"]


@dataclass(frozen=True)
class Method:
    name: str
    bank: int = 0              # prototypes in the bank (SegSort only)
    iterations: int = 0        # k-means iterations
    k: int = 0                 # nearest neighbours that vote


# --- the methods ---------------------------------------------------------------------------------------

class Clock:
    """Phase times of one run, each ended by a device synchronisation."""

    def __init__(self, device: torch.device):
        self.device, self.phases = device, {}
        self.last = self.start = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self, phase: str) -> None:
        now = self._now()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now


def softmax_inference(model, image: np.ndarray, clock: Clock) -> torch.Tensor:
    with torch.inference_mode():
        scores = class_scores(model, image)
        labels = majority(scores)
    clock.lap("forward")
    return labels


def segsort_inference(model, image: np.ndarray, bank: tuple[torch.Tensor, torch.Tensor], method: Method,
                      grid: tuple[int, int], num_classes: int, clock: Clock) -> torch.Tensor:
    prototypes, bank_labels = bank
    with torch.inference_mode():
        features = pixel_features(model, image, "embedding")
        clock.lap("forward")
        segments = segment_image(features, grid, method.iterations)
        clock.lap("kmeans")
        queries = query_prototypes(features, segments, grid[0] * grid[1])
        _, neighbours = nearest_prototypes(queries, prototypes, method.k)
        votes = knn_votes(bank_labels[neighbours], num_classes)
        labels = majority(votes.T[:, segments])
    clock.lap("knn")
    return labels


def synthetic_bank(size: int, dim: int, num_classes: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random unit prototypes and labels: the same bank every time for a given size."""
    generator = torch.Generator().manual_seed(size)
    prototypes = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
    labels = torch.randint(num_classes, (size,), generator=generator)
    return prototypes.to(device), labels.to(device)


def build_models(network: dict, embedding_dim: int, num_classes: int, device: torch.device):
    """A SegSort model and a softmax model sharing the very same backbone and decoder modules."""
    torch.manual_seed(0)
    segsort = build_model(network_config(network, "segsort", embedding_dim, num_classes))
    softmax = build_model(network_config(network, "softmax", embedding_dim, num_classes))
    softmax.backbone, softmax.decoder = segsort.backbone, segsort.decoder
    return segsort.to(device).eval(), softmax.to(device).eval()


def run_once(method: Method, models, image, args, grid, num_classes, device, peak):
    """One inference of one image; returns (phase seconds, start bytes, peak bytes)."""
    segsort, softmax = models
    bank = None
    if method.name == "segsort":
        bank = synthetic_bank(method.bank, args.embedding_dim, num_classes, device)
    start = peak.start()
    clock = Clock(device)
    if bank is None:
        softmax_inference(softmax, image, clock)
    else:
        segsort_inference(segsort, image, bank, method, grid, num_classes, clock)
    top = peak.stop()
    del bank
    return clock.phases, start, top


def operator_counts(method: Method, models, image, args, device) -> tuple[int, int]:
    """The operator calls and host syncs of one inference (the bank made beforehand)."""
    segsort, softmax = models
    clock = Clock(torch.device("cpu"))  # no device synchronisation: only the inference is counted
    if method.name == "softmax":
        return count_operators(lambda: softmax_inference(softmax, image, clock))
    bank = synthetic_bank(method.bank, args.embedding_dim, args.classes, device)
    return count_operators(lambda: segsort_inference(segsort, image, bank, method, tuple(args.grid), args.classes,
                                                     clock))


# --- main --------------------------------------------------------------------------------------------

def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is available")
    return torch.device(name)


def summarise(methods, phases, peaks, starts) -> list[dict]:
    rows = []
    for method in methods:
        runs = phases[method]
        forward, kmeans, knn = (statistics.median(run.get(p, 0.0) for run in runs) for p in ("forward", "kmeans", "knn"))
        total = statistics.median(sum(run.values()) for run in runs)
        rows.append({"method": method, "forward_ms": forward * 1000, "kmeans_ms": kmeans * 1000, "knn_ms": knn * 1000,
                     "time_ms": total * 1000, "memory_mib": max(peaks[method]) / MIB,
                     "working_memory_mib": max(p - s for p, s in zip(peaks[method], starts[method])) / MIB})
    base = rows[0]
    for row in rows:
        row["time_vs_softmax"] = row["time_ms"] / base["time_ms"]
        row["memory_vs_softmax"] = row["memory_mib"] / base["memory_mib"]
    return rows


def csv_rows(rows, args, device_name: str, measure: str) -> list[dict]:
    out = []
    for row in rows:
        m = row["method"]
        seg = m.name == "segsort"
        out.append({
            "method": m.name, "bank": m.bank if seg else "", "kmeans_iterations": m.iterations if seg else "",
            "knn_k": m.k if seg else "",
            "forward_ms": f"{row['forward_ms']:.2f}", "kmeans_ms": f"{row['kmeans_ms']:.2f}" if seg else "",
            "knn_ms": f"{row['knn_ms']:.2f}" if seg else "",
            "kmeans_pct": f"{100 * row['kmeans_ms'] / row['time_ms']:.2f}" if seg else "",
            "knn_pct": f"{100 * row['knn_ms'] / row['time_ms']:.2f}" if seg else "",
            "time_ms": f"{row['time_ms']:.2f}", "time_vs_softmax": f"{row['time_vs_softmax']:.4f}",
            "memory_mib": f"{row['memory_mib']:.1f}", "memory_vs_softmax": f"{row['memory_vs_softmax']:.4f}",
            "working_memory_mib": f"{row['working_memory_mib']:.1f}",
            "device": device_name, "network": args.network, "image_size": f"{args.size[0]}x{args.size[1]}",
            "images": args.images, "repeats": args.repeats, "warmup": args.warmup, "memory_measure": measure,
            "bank_content": "synthetic (seeded random unit vectors and labels)" if seg else ""})
    return out


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    titles = ("method", "bank", "k-means %", "kNN %", "forward ms", "time ms", "x softmax", "memory MiB", "x softmax")
    print("{:<22}{:>8}{:>11}{:>8}{:>12}{:>10}{:>11}{:>12}{:>11}".format(*titles))
    for r in rows:
        name = "softmax" if r["method"] == "softmax" else f"{r['kmeans_iterations']} iter {r['knn_k']}-NN"
        print("{:<22}{:>8}{:>11}{:>8}{:>12}{:>10}{:>11}{:>12}{:>11}".format(
            name, r["bank"] or "-", r["kmeans_pct"] or "-", r["knn_pct"] or "-", r["forward_ms"], r["time_ms"],
            f"{float(r['time_vs_softmax']):.3f}", r["memory_mib"], f"{float(r['memory_vs_softmax']):.3f}"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", default="pspnet_resnet101", help="a network of params.yaml `networks`")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"), help="image size")
    parser.add_argument("--images", type=int, default=1, help="random images (seeded)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds over every method and image")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds before them")
    parser.add_argument("--banks", type=int, nargs="+", default=[36000, 265000], help="bank sizes (prototypes)")
    parser.add_argument("--iterations", type=int, nargs="+", default=[2, 4, 10], help="k-means iterations")
    parser.add_argument("--knn", type=int, nargs="+", default=[1, 11, 21], help="nearest neighbours")
    parser.add_argument("--grid", type=int, nargs=2, default=(5, 5), help="k-means initial grid (25 clusters)")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--out", type=Path, default=None, help="CSV file to write")
    args = parser.parse_args()

    params = load_params(args.params)
    if args.network not in params["networks"]:
        parser.error(f"--network must be one of {sorted(params['networks'])}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"CPU, {torch.get_num_threads()} threads")
    peak = peak_meter(device)

    models = build_models(params["networks"][args.network], args.embedding_dim, args.classes, device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    methods = [Method("softmax")] + [Method("segsort", bank, iterations, k) for bank in args.banks
                                     for iterations in args.iterations for k in args.knn]
    phases = {m: [] for m in methods}
    peaks = {m: [] for m in methods}
    starts = {m: [] for m in methods}
    tic = time.perf_counter()
    for round_ in range(args.warmup + args.repeats):
        for method in methods:
            for image in images:
                times, start, top = run_once(method, models, image, args, tuple(args.grid), args.classes, device, peak)
                if round_ >= args.warmup:
                    phases[method].append(times)
                    starts[method].append(start)
                    peaks[method].append(top)
        print(f"{'warm-up' if round_ < args.warmup else 'repeat'} round {round_ + 1}/{args.warmup + args.repeats} "
              f"done ({time.perf_counter() - tic:.0f} s)", file=sys.stderr, flush=True)

    rows = csv_rows(summarise(methods, phases, peaks, starts), args, device_name, peak.measure)
    header = (f"Table 4: {args.network}, one {args.size[0]}x{args.size[1]} image at single scale, {device_name}; "
              f"medians of {args.images} image(s) x {args.repeats} repeat(s) after {args.warmup} warm-up round(s), "
              f"methods interleaved\nk-means grid {args.grid[0]}x{args.grid[1]}, embedding {args.embedding_dim}, "
              f"{args.classes} classes; banks are synthetic (kNN cost does not depend on their content); "
              f"memory: {peak.measure}, total peak including the network")
    print_table(rows, header)
    for bank in args.banks:
        for r in rows:
            if r["bank"] == bank and r["kmeans_iterations"] == max(args.iterations) and r["knn_k"] == max(args.knn):
                print(f"bank {bank}, {r['kmeans_iterations']} iterations + {r['knn_k']}-NN vs softmax: time "
                      f"{float(r['time_vs_softmax']):.3f}x, memory {float(r['memory_vs_softmax']):.3f}x "
                      f"(issue target on a GPU: <= 1.10x time with the 36k bank, <= 1.15x with 265k)")
    for method in (methods[0], methods[-1]):
        operators, syncs = operator_counts(method, models, images[0], args, device)
        print(f"{method.name} inference of one image: {operators} operator calls, {syncs} host syncs")
    print(f"run time {time.perf_counter() - tic:.0f} s")
    if args.out:
        with atomic_path(args.out) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
