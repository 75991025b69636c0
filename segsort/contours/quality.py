"""How good are HED contours and HED-owt-ucm pseudo-segments on real photographs, and how fast.

Measured on the real samples kept in the repository (`real_samples/`): five BSDS500 test images
with five human segmentations each, and a few PASCAL VOC images with their class masks.

- HED: the BSDS contour benchmark (non-maximum suppression, 99 thresholds, each binarised map thinned
  and matched within 0.0075 of the diagonal): ODS, OIS, and P/R at the ODS threshold.
- Pseudo-segments at the pipeline's cut: boundary precision/recall/F against the BSDS humans, number
  of segments, and achievable segmentation accuracy against the VOC masks (each segment labelled by its
  majority class: the best pixel accuracy any segment-wise labelling can reach).
- Speed on images of 500x375 (VOC's usual size): HED images/s, owt-ucm seconds per image on one core.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from segsort.boundaries import (BSDS_MAX_DISTANCE, BoundaryCounts, achievable_segmentation_accuracy,
                                contour_counts, contour_scores, match_boundaries, segmentation_boundaries)
from segsort.contours.hed import HED, detect_contours
from segsort.contours.maps import thin_contours
from segsort.contours.owt_ucm import cut_hierarchy, owt_ucm
from segsort.io import DataError, read_image, read_label_map
from segsort.parallel import map_with_progress

BSDS_THRESHOLDS = np.linspace(0.01, 0.99, 99)
SPEED_SIZE = (375, 500)  # (H, W)


def check_real_samples(root: str | Path) -> Path:
    """The real-samples folder, or a DataError saying where it was expected and what it must hold."""
    root = Path(root)
    missing = [sub for sub in ("bsds500/images", "bsds500/groundTruth", "voc/JPEGImages", "voc/SegmentationClass")
               if not (root / sub).is_dir()]
    if missing:
        raise DataError(f"{root.resolve()}: the real sample images are missing ({', '.join(missing)} not found); "
                        f"the repository keeps them in real_samples/, or set `real_samples_dir` in params.yaml")
    return root


def read_human_segmentation(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A BSDS human segmentation stored as a 16-bit label PNG, checked against the image size."""
    try:
        with Image.open(path) as img:
            labels = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot decode human segmentation ({err})") from err
    if labels.shape != tuple(shape):
        raise DataError(f"{path}: human segmentation is {labels.shape} but the image is {tuple(shape)}")
    return labels


def bsds_samples(root: Path) -> list[tuple[str, np.ndarray, list[np.ndarray]]]:
    """(id, RGB image, human boundary maps) of each BSDS500 sample image."""
    samples = []
    for path in sorted((root / "bsds500" / "images").glob("*.jpg")):
        image = read_image(path)
        humans = []
        for gt_path in sorted((root / "bsds500" / "groundTruth").glob(f"{path.stem}_*.png")):
            humans.append(segmentation_boundaries(read_human_segmentation(gt_path, image.shape[:2])))
        if not humans:
            raise DataError(f"{path}: no human segmentation ({path.stem}_<k>.png) in bsds500/groundTruth")
        samples.append((path.stem, image, humans))
    if not samples:
        raise DataError(f"{root / 'bsds500' / 'images'}: no *.jpg images")
    return samples


def voc_samples(root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(id, RGB image, class mask with 255 = void) of each VOC sample image."""
    samples = []
    for path in sorted((root / "voc" / "JPEGImages").glob("*.jpg")):
        image = read_image(path)
        labels = read_label_map(root / "voc" / "SegmentationClass" / f"{path.stem}.png", image.shape[:2], 21)
        samples.append((path.stem, image, labels))
    if not samples:
        raise DataError(f"{root / 'voc' / 'JPEGImages'}: no *.jpg images")
    return samples


def pseudo_segments(contours: np.ndarray, cfg: dict) -> np.ndarray:
    """The pipeline's pseudo-segments of one contour map under the `pseudo_segments` params."""
    if cfg["thin_contours"]:
        contours = thin_contours(contours)
    return cut_hierarchy(owt_ucm(contours)[1], cfg["cut"], cfg["threshold"], cfg["threshold_step"],
                         cfg["max_regions"])


def _contour_counts_job(job) -> list[BoundaryCounts]:
    contours, humans, thresholds = job
    return contour_counts(thin_contours(contours), humans, thresholds)


def hed_contour_scores(contours: list[np.ndarray], humans: list[list[np.ndarray]], cores: int,
                       thresholds: np.ndarray = BSDS_THRESHOLDS):
    """BSDS ODS/OIS of HED maps (one per image) against the human boundary maps, on `cores` processes."""
    jobs = [(c, h, thresholds) for c, h in zip(contours, humans)]
    per_image = list(map_with_progress(_contour_counts_job, jobs, cores, "contour benchmark"))
    return contour_scores(per_image, thresholds)


def resized_for_speed(images: list[np.ndarray]) -> list[np.ndarray]:
    h, w = SPEED_SIZE
    return [np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR)) for image in images]


def owt_ucm_and_cut(contours: np.ndarray) -> np.ndarray:
    """owt-ucm and the default max_regions cut (48 segments) of one contour map: the timed unit of work."""
    return cut_hierarchy(owt_ucm(contours)[1], "max_regions", 0.25, 0.01, 48)


def measure_speed(model: HED, images: list[np.ndarray], batch_size: int, repeats: int = 3) -> dict:
    """HED images/s (batched, on the model's device) and owt-ucm seconds per image (this process, one core),
    on `images` resized to 500x375; the best of `repeats` timings of the whole set, after a warm-up."""
    import torch

    images = resized_for_speed(images)
    sync = torch.cuda.synchronize if next(model.parameters()).is_cuda else (lambda: None)
    detect_contours(model, images[:batch_size], batch_size)  # warm-up
    hed_times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        contours = detect_contours(model, images, batch_size)
        sync()
        hed_times.append(time.perf_counter() - start)
    owt_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for c in contours:
            owt_ucm_and_cut(c)
        owt_times.append(time.perf_counter() - start)
    return {"hed_images_per_second": len(images) / min(hed_times),
            "owt_ucm_seconds_per_image": min(owt_times) / len(images)}


def quality_rows(model: HED, root: Path, cfg: dict, cores: int, batch_size: int) -> list[dict]:
    """Every measure of this module as rows (samples, measure, value, protocol) for the report."""
    bsds = bsds_samples(root)
    voc = voc_samples(root)
    bsds_contours = [detect_contours(model, [image])[0] for _, image, _ in bsds]
    voc_contours = [detect_contours(model, [image])[0] for _, image, _ in voc]
    bsds_name = f"bsds500 ({len(bsds)} images, {sum(len(h) for _, _, h in bsds)} human segmentations)"
    voc_name = f"voc ({len(voc)} images)"
    cut = (f"cut {cfg['cut']} (threshold {cfg['threshold']}, step {cfg['threshold_step']}, "
           f"at most {cfg['max_regions']}){', thinned contours' if cfg['thin_contours'] else ''}")
    match = f"one-to-one matching within {BSDS_MAX_DISTANCE} of the diagonal"

    scores = hed_contour_scores(bsds_contours, [h for _, _, h in bsds], cores)
    hed_protocol = f"HED fused output, NMS, {len(BSDS_THRESHOLDS)} thresholds, {match}"
    rows = [
        {"samples": bsds_name, "measure": "hed_ods_f", "value": scores.ods, "protocol": hed_protocol},
        {"samples": bsds_name, "measure": "hed_ods_precision", "value": scores.ods_precision, "protocol": hed_protocol},
        {"samples": bsds_name, "measure": "hed_ods_recall", "value": scores.ods_recall, "protocol": hed_protocol},
        {"samples": bsds_name, "measure": "hed_ods_threshold", "value": scores.ods_threshold, "protocol": hed_protocol},
        {"samples": bsds_name, "measure": "hed_ois_f", "value": scores.ois, "protocol": hed_protocol},
    ]

    segments = [pseudo_segments(c, cfg) for c in bsds_contours]
    counts = sum((match_boundaries(segmentation_boundaries(s), h) for s, (_, _, h) in zip(segments, bsds)),
                 BoundaryCounts())
    protocol = f"pseudo-segment borders, {cut}, {match}"
    rows += [
        {"samples": bsds_name, "measure": "segments_boundary_precision", "value": counts.precision, "protocol": protocol},
        {"samples": bsds_name, "measure": "segments_boundary_recall", "value": counts.recall, "protocol": protocol},
        {"samples": bsds_name, "measure": "segments_boundary_f", "value": counts.f_measure, "protocol": protocol},
        {"samples": bsds_name, "measure": "segments_per_image", "value": np.mean([s.max() + 1 for s in segments]),
         "protocol": cut},
    ]

    segments = [pseudo_segments(c, cfg) for c in voc_contours]
    correct, total = map(sum, zip(*(achievable_segmentation_accuracy(s, labels)
                                    for s, (_, _, labels) in zip(segments, voc))))
    rows += [
        {"samples": voc_name, "measure": "segments_achievable_accuracy", "value": correct / total,
         "protocol": f"each segment labelled by its majority class, void pixels ignored, {cut}"},
        {"samples": voc_name, "measure": "segments_per_image", "value": np.mean([s.max() + 1 for s in segments]),
         "protocol": cut},
    ]

    speed = measure_speed(model, [image for _, image, _ in voc], batch_size)
    device = "GPU" if next(model.parameters()).is_cuda else f"CPU, {cores} threads"
    rows += [
        {"samples": f"{voc_name} resized to 500x375", "measure": "hed_images_per_second",
         "value": speed["hed_images_per_second"], "protocol": f"{device}, batches of {batch_size}; machine-dependent"},
        {"samples": f"{voc_name} resized to 500x375", "measure": "owt_ucm_seconds_per_image",
         "value": speed["owt_ucm_seconds_per_image"], "protocol": "one core; machine-dependent"},
    ]
    return rows
