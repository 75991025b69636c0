"""Speed of the pseudo-segment stages on 500x375 images (VOC's usual size), HED and owt-ucm separately.

Prints HED images/s (batched, on the GPU if there is one, else on --threads CPU threads), owt-ucm
(watershed, UCM and the max_regions cut) seconds per image on one core, and owt-ucm images/s on --cores
worker processes, as the pseudo_segments stage runs it. Issue targets: owt-ucm <= 0.2 s per image on one
core; HED >= 50 images/s on a GPU.

    python benchmarks/pseudo_segments_speed.py                 # the real VOC samples if present, else generated images
    python benchmarks/pseudo_segments_speed.py --cores 16 --images 64
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from segsort.contours.hed import detect_contours, load_hed
from segsort.contours.quality import SPEED_SIZE, measure_speed, owt_ucm_and_cut, resized_for_speed, voc_samples
from segsort.data.tiny import generate_tiny_dataset
from segsort.io import read_image
from segsort.parallel import map_with_progress

REPO = Path(__file__).resolve().parents[1]


def benchmark_images(count: int) -> tuple[list[np.ndarray], str]:
    """The real VOC samples (repeated up to `count`) if they are in the repository, else generated images."""
    samples = REPO / yaml.safe_load((REPO / "params.yaml").read_text())["real_samples_dir"]
    if (samples / "voc" / "JPEGImages").is_dir():
        images = [image for _, image, _ in voc_samples(samples)]
        source = f"{len(images)} real VOC samples"
    else:
        h, w = SPEED_SIZE
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {"num_train": count, "num_train_aug": count, "num_val": 1, "num_test": 0, "min_size": h,
                   "max_size": w, "min_objects": 2, "max_objects": 4, "void_width": 3}
            generate_tiny_dataset(Path(tmp), cfg, seed=0)
            images = [read_image(p) for p in sorted((Path(tmp) / "JPEGImages").glob("*.jpg"))[:count]]
        source = "generated tiny-dataset images (real samples not found)"
    return [images[i % len(images)] for i in range(count)], source


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=12)
    p.add_argument("--batch", type=int, default=4, help="HED batch size")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of HED on a CPU")
    p.add_argument("--cores", type=int, default=2, help="worker processes of the parallel owt-ucm run")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    images, source = benchmark_images(args.images)
    model = load_hed(device)
    speed = measure_speed(model, images, args.batch)
    contours = detect_contours(model, resized_for_speed(images), args.batch)
    start = time.perf_counter()
    list(map_with_progress(owt_ucm_and_cut, contours, args.cores, "owt-ucm"))
    parallel = len(contours) / (time.perf_counter() - start)

    h, w = SPEED_SIZE
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {args.threads} threads"
    print(f"{len(images)} images of {w}x{h} ({source})")
    print(f"HED ({where}, batch {args.batch}): {speed['hed_images_per_second']:.2f} images/s")
    print(f"owt-ucm, one core: {speed['owt_ucm_seconds_per_image']:.3f} s per image")
    print(f"owt-ucm, {args.cores} processes: {parallel:.2f} images/s (including process start-up)")


if __name__ == "__main__":
    main()
