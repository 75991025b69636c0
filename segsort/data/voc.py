"""Datasets in PASCAL VOC layout: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/<split>.txt."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from segsort.clustering import grid_assignment
from segsort.io import IGNORE_LABEL, read_image, read_id_list, read_label_map

# Raw RGB value used to pad crops: the backbone input mean, so padding is zero after normalisation.
PAD_RGB = (124, 116, 104)


def image_path(root: Path, image_id: str) -> Path:
    """JPEGImages/<id>.jpg, or <id>.png where there is no JPEG (Cityscapes' images stay PNG)."""
    jpg = root / "JPEGImages" / f"{image_id}.jpg"
    png = root / "JPEGImages" / f"{image_id}.png"
    return png if not jpg.is_file() and png.is_file() else jpg


@dataclass
class Sample:
    image_id: str
    image: np.ndarray            # (H, W, 3) uint8 RGB
    labels: np.ndarray | None    # (H, W) uint8 class ids, 255 = ignore
    segments: np.ndarray | None  # (H, W) uint8 pseudo-segment ids, 255 = none


class VOCLayout:
    """Reads one split of a VOC-layout dataset, validating every file it reads.

    `segments_dir`, if given, holds one `<id>.png` pseudo-segment map per image (HED-owt-ucm).
    `hidden_classes`: class ids read as void (255), as if no image were labelled with them (the
    hidden-class experiment: a run and its bank that never saw a class).
    """

    def __init__(self, root: str | Path, split: str, num_classes: int,
                 with_labels: bool = True, segments_dir: str | Path | None = None,
                 hidden_classes: tuple[int, ...] = ()):
        self.root = Path(root)
        self.split = split
        self.num_classes = num_classes
        self.with_labels = with_labels
        self.segments_dir = None if segments_dir is None else Path(segments_dir)
        self.hidden_classes = tuple(hidden_classes)
        self.ids = read_id_list(self.root / "ImageSets" / "Segmentation" / f"{split}.txt")

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, image_id: str) -> Path:
        return image_path(self.root, image_id)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.ids[index]
        image = read_image(self.image_path(image_id))
        labels = segments = None
        if self.with_labels:
            labels = read_label_map(self.root / "SegmentationClass" / f"{image_id}.png",
                                    shape=image.shape[:2], num_classes=self.num_classes)
            if self.hidden_classes:
                labels = np.where(np.isin(labels, self.hidden_classes), np.uint8(IGNORE_LABEL), labels)
        if self.segments_dir is not None:
            segments = read_label_map(self.segments_dir / f"{image_id}.png", shape=image.shape[:2])
        return Sample(image_id, image, labels, segments)


def augment(sample: Sample, rng: np.random.Generator, crop: int, min_scale: float, max_scale: float,
            grid: tuple[int, int] | None = None, grid_blocks: str = "fixed_size"):
    """Random scale in [min_scale, max_scale), random mirror, random crop padded with ignore.

    Returns (image (crop, crop, 3) uint8, labels, segments, locations (2, crop, crop) float32, blocks).
    Locations are the pixel coordinates (y, x) divided by the ORIGINAL image size, so a crop keeps
    the coordinates of the image it came from (they guide k-means only).
    blocks (crop, crop) uint16, only with a `grid`: the block of the grid laid on the ORIGINAL image that
    each pixel comes from, cut as `grid_blocks` says (the authors' release initialises k-means so; padding is
    block 0 and ignore).
    """
    height, width = sample.image.shape[:2]
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float32) / height,
                         np.arange(width, dtype=np.float32) / width, indexing="ij")
    planes = {"image": sample.image, "locations": np.stack([ys, xs], axis=-1)}
    if sample.labels is not None:
        planes["labels"] = sample.labels
    if sample.segments is not None:
        planes["segments"] = sample.segments
    if grid is not None:
        planes["blocks"] = grid_assignment(height, width, grid, blocks=grid_blocks).reshape(height, width).numpy().astype(np.uint16)

    scale = rng.uniform(min_scale, max_scale)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    for name, plane in planes.items():
        nearest = name in ("labels", "segments", "blocks")
        planes[name] = cv2.resize(plane, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        planes = {name: np.ascontiguousarray(plane[:, ::-1]) for name, plane in planes.items()}

    pad_value = {"image": PAD_RGB, "locations": (0.0, 0.0), "labels": IGNORE_LABEL, "segments": IGNORE_LABEL,
                 "blocks": 0}
    h, w = size[1], size[0]
    top = rng.integers(0, max(h - crop, 0) + 1)
    left = rng.integers(0, max(w - crop, 0) + 1)
    out = {}
    for name, plane in planes.items():
        window = plane[top:top + crop, left:left + crop]
        pad = ((0, crop - window.shape[0]), (0, crop - window.shape[1])) + ((0, 0),) * (plane.ndim - 2)
        if plane.ndim == 3:
            padded = np.stack([np.pad(window[..., c], pad[:2], constant_values=pad_value[name][c])
                               for c in range(plane.shape[2])], axis=-1)
        else:
            padded = np.pad(window, pad, constant_values=pad_value[name])
        out[name] = padded
    return (out["image"], out.get("labels"), out.get("segments"),
            np.ascontiguousarray(out["locations"].transpose(2, 0, 1)), out.get("blocks"))


def check_split(dataset: VOCLayout) -> None:
    """Read every sample once so a bad file fails before hours of training, naming the file."""
    for index in range(len(dataset)):
        dataset[index]
