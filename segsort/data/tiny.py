"""The embedded tiny dataset: a small PASCAL-VOC-layout segmentation set made offline from skimage photos.

Every image is a real photographic background (a texture or a large photo crop from `skimage.data`)
with min_objects..max_objects (2..4) foreground objects pasted on it. Each foreground class has one
appearance source, a photo bundled with scikit-image (the cat class is always a crop of `chelsea`,
the coins class always of `coins`, ...). An object is a random shape (ellipse, smooth blob or
star-shaped polygon, 15-55% of the image side) filled with a random crop of its class's source:
random position, size and mirroring, then a small brightness, contrast and hue jitter. Objects may
overlap (later ones occlude earlier ones, re-drawn up to 20 times rather than hide most of one) and be
cut by the image border.

As in VOC, the class masks carry a void band (255) of `void_width` pixels straddling every object
outline, between an object and the background as well as between two overlapping objects.

Everything is drawn from `numpy.random.default_rng`, with one child generator per image spawned
from the seed, so the same seed gives byte-identical files and image i does not depend on how many
images are made.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import data as skdata

from segsort.io import IGNORE_LABEL, atomic_path, write_label_png

SOURCE_SIDE = 512             # sources are resized so that their longer side has this many pixels
CROP_FRACTIONS = (0.35, 1.0)  # side of an appearance crop relative to the largest that fits the roi
OBJECT_SIZES = (0.15, 0.55)   # object diameter as a fraction of the image side
PLACEMENT_TRIES = 20          # tries to place an object without hiding most of an earlier one
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Source:
    """A photo of `skimage.data`, the part of it used (roi: y0, y1, x0, x1 as fractions) and a tint
    (RGB gains) that colours it if it is grey."""
    name: str
    note: str
    roi: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


CLASS_SOURCES = {
    "cat": Source("chelsea", "fur and face of a tabby cat", roi=(0.0, 1.0, 0.0, 0.8)),
    "coffee": Source("coffee", "cup of coffee on a red saucer and a wooden table"),
    "astronaut": Source("astronaut", "astronaut in an orange suit", roi=(0.05, 1.0, 0.12, 0.8)),
    "rocket": Source("rocket", "rocket launch site at dusk: sky, towers, lights"),
    "coins": Source("coins", "grey photo of coins, tinted brass", tint=(1.0, 0.8, 0.45)),
    "tissue": Source("immunohistochemistry", "stained tissue under a microscope"),
    "galaxies": Source("hubble_deep_field", "Hubble deep field: galaxies on black"),
    "retina": Source("retina", "fundus photo of a retina", roi=(0.2, 0.8, 0.2, 0.8)),
}

BACKGROUND_SOURCES = (
    Source("brick", "brick wall, tinted terracotta", tint=(0.9, 0.55, 0.42)),
    Source("grass", "grass, tinted green", tint=(0.55, 0.85, 0.35)),
    Source("gravel", "gravel, tinted sand", tint=(0.9, 0.82, 0.65)),
    Source("moon", "grey lunar surface"),
    Source("camera", "grey photo of a cameraman on a lawn"),
    Source("page", "grey photo of a printed page, tinted paper", tint=(1.0, 0.96, 0.86)),
)

TINY_CLASSES: tuple[str, ...] = ("background", *CLASS_SOURCES)


def describe_tiny_dataset() -> str:
    """A markdown list of the classes and their appearance sources (for the README)."""
    backgrounds = "; ".join(f"`skimage.data.{src.name}()` ({src.note})" for src in BACKGROUND_SOURCES)
    lines = [f"- 0 `background`: a random crop of one per image of {backgrounds}"]
    for index, (name, src) in enumerate(CLASS_SOURCES.items(), start=1):
        lines.append(f"- {index} `{name}`: `skimage.data.{src.name}()` ({src.note})")
    return "\n".join(lines)


def generate_tiny_dataset(out_dir: Path, cfg: dict, seed: int) -> None:
    """Write the tiny dataset (JPEGImages, SegmentationClass, ImageSets/Segmentation) into out_dir."""
    num_train, num_train_aug, num_val, num_test = (cfg["num_train"], cfg["num_train_aug"], cfg["num_val"],
                                                   cfg["num_test"])
    if not 0 < num_train <= num_train_aug or num_val <= 0 or num_test < 0:
        raise ValueError(f"tiny config needs 0 < num_train <= num_train_aug, num_val > 0 and num_test >= 0, got {cfg}")
    ids = [f"tiny_{i:06d}" for i in range(1, num_train_aug + num_val + num_test + 1)]
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(ids))]
    with atomic_path(out_dir) as tmp:
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (tmp / sub).mkdir(parents=True)
        for image_id, rng in zip(ids, rngs):
            image, labels = make_sample(cfg, rng)
            Image.fromarray(image).save(tmp / "JPEGImages" / f"{image_id}.jpg", quality=JPEG_QUALITY)
            write_label_png(tmp / "SegmentationClass" / f"{image_id}.png", labels)
        # The test split's labels are written too (the tiny set has no evaluation server), but nothing
        # that makes a submission package (Table 7) reads them.
        splits = {"train": ids[:num_train], "train_aug": ids[:num_train_aug],
                  "val": ids[num_train_aug:num_train_aug + num_val], "test": ids[num_train_aug + num_val:]}
        for split, split_ids in splits.items():
            (tmp / "ImageSets/Segmentation" / f"{split}.txt").write_text("".join(i + "\n" for i in split_ids))


def make_sample(cfg: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One RGB image (H, W, 3) and its uint8 class mask with the void band."""
    height, width = rng.integers(cfg["min_size"], cfg["max_size"], endpoint=True, size=2)
    background = BACKGROUND_SOURCES[rng.integers(len(BACKGROUND_SOURCES))]
    image = render_appearance(background, (height, width), (height / 2, width / 2), (height, width), rng)
    instances = np.zeros((height, width), np.uint8)
    classes = [0]
    num_objects = rng.integers(cfg["min_objects"], cfg["max_objects"], endpoint=True)
    for instance in range(1, num_objects + 1):
        mask, center, extent = place_object(instances, rng)
        class_id = int(rng.integers(1, len(TINY_CLASSES)))
        source = CLASS_SOURCES[TINY_CLASSES[class_id]]
        texture = render_appearance(source, (height, width), center, extent, rng)
        image[mask] = texture[mask]
        instances[mask] = instance
        classes.append(class_id)
    labels = np.asarray(classes, np.uint8)[instances]
    labels[void_band(instances, cfg["void_width"])] = IGNORE_LABEL
    return image, labels


def place_object(instances: np.ndarray, rng: np.random.Generator):
    """A random shape that leaves every earlier object at least half of its visible area (the last
    try is kept if none does). Returns its mask, centre (y, x) and bounding-box extent (h, w)."""
    before = np.bincount(instances.ravel(), minlength=256)
    for _ in range(PLACEMENT_TRIES):
        mask, center, extent = random_shape(instances.shape, rng)
        after = np.bincount(instances[~mask], minlength=256)
        if np.all(after[1:] * 2 >= before[1:]):
            break
    return mask, center, extent


def random_shape(shape: tuple[int, int], rng: np.random.Generator):
    """An ellipse, smooth blob or star-shaped polygon centred in the inner 80% of the image, as a mask."""
    height, width = shape
    radius = rng.uniform(*OBJECT_SIZES) * np.sqrt(height * width) / 2
    kind = rng.choice(["ellipse", "blob", "polygon"])
    if kind == "polygon":
        corners = rng.integers(5, 10)
        angles = (np.arange(corners) + rng.uniform(-0.3, 0.3, corners)) * 2 * np.pi / corners
        radii = radius * rng.uniform(0.6, 1.0, corners)
    else:
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radii = radius * np.ones_like(angles)
        if kind == "blob":
            for harmonic in range(2, 6):   # smooth bumps, weaker at higher frequencies
                phase = rng.uniform(0, 2 * np.pi)
                radii *= 1 + rng.uniform(0, 0.5 / harmonic) * np.cos(harmonic * angles + phase)
    aspect = rng.uniform(0.55, 1.0) if kind != "polygon" else 1.0
    tilt = rng.uniform(0, np.pi)
    ys, xs = radii * np.sin(angles) * aspect, radii * np.cos(angles)
    ys, xs = xs * np.sin(tilt) + ys * np.cos(tilt), xs * np.cos(tilt) - ys * np.sin(tilt)
    center = (rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width)
    points = np.stack([xs + center[1], ys + center[0]], axis=1)
    canvas = np.zeros(shape, np.uint8)
    cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    extent = (np.ptp(ys) + 1, np.ptp(xs) + 1)
    return canvas.astype(bool), center, extent


def render_appearance(source: Source, shape: tuple[int, int], center, extent,
                      rng: np.random.Generator) -> np.ndarray:
    """An (H, W, 3) image whose box of size `extent` around `center` shows a random crop of the
    source's roi (random position, size and mirroring) with a small photometric jitter."""
    photo = load_source(source)
    y0, y1, x0, x1 = source.roi
    roi_h, roi_w = (y1 - y0) * photo.shape[0], (x1 - x0) * photo.shape[1]
    fit = min(roi_h / extent[0], roi_w / extent[1])  # source pixels per image pixel of the largest crop
    scale = rng.uniform(*CROP_FRACTIONS) * fit
    crop_h, crop_w = scale * extent[0], scale * extent[1]
    crop_y = y0 * photo.shape[0] + crop_h / 2 + rng.uniform(0, roi_h - crop_h)  # crop centre in the source
    crop_x = x0 * photo.shape[1] + crop_w / 2 + rng.uniform(0, roi_w - crop_w)
    flip = rng.choice([-1.0, 1.0])
    # resize the source by 1 / scale (area averaging when shrinking: no aliasing), then map each
    # image pixel (x, y) to the pixel (u, v) of the resized source, `center` to the crop centre
    interpolation = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
    photo = cv2.resize(photo, None, fx=1 / scale, fy=1 / scale, interpolation=interpolation)
    to_source = np.array([[flip, 0, crop_x / scale - flip * center[1]], [0, 1, crop_y / scale - center[0]]])
    texture = cv2.warpAffine(photo, to_source, (int(shape[1]), int(shape[0])),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    return jitter(texture, rng)


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small random hue shift (+-16 degrees), contrast (x0.8-1.2) and brightness (+-20) changes."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + rng.integers(-8, 9)) % 180
    image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    image = (image - image.mean()) * rng.uniform(0.8, 1.2) + image.mean() + rng.uniform(-20, 20)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def load_source(source: Source) -> np.ndarray:
    """The source photo as RGB uint8, grey ones tinted, resized to a longer side of SOURCE_SIDE."""
    photo = getattr(skdata, source.name)()
    if photo.ndim == 2:
        photo = photo[..., None] * np.asarray(source.tint, np.float32)
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    factor = SOURCE_SIDE / max(photo.shape[:2])
    size = (round(photo.shape[1] * factor), round(photo.shape[0] * factor))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(photo, size, interpolation=interpolation))


def void_band(instances: np.ndarray, width: int) -> np.ndarray:
    """Pixels within the `width`-pixel band straddling every boundary between instances
    (background is instance 0): those whose (width+1)-square window sees two instances."""
    size = width + 1
    return ndimage.maximum_filter(instances, size) != ndimage.minimum_filter(instances, size)
