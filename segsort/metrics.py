"""Semantic segmentation metrics: confusion-matrix mIoU, and per-class boundary precision/recall/F.

Boundary evaluation (paper, supplementary 6.4): for each class, the boundary of its region in the
prediction is matched one-to-one to the boundary of its region in the ground truth within 0.01 of the
image diagonal (BSDS `correspondPixels` matching, segsort.boundaries); counts are summed over the set
before precision and recall are taken, and the reported f-measure is the mean of the per-class F over all
classes, background included: the paper's VOC means (Tables 1, 3 and 5) are 21-class means, with a
background column it does not print (references/paper_tables.yaml derives it).

Void (255) in the ground truth: VOC draws a void band along object borders, so the true border lies
inside it. For the boundary maps only, void pixels take the class of the nearest labelled pixel, which
puts the border in the middle of the band; void areas wider than twice the tolerance (e.g. a whole object
marked difficult) are not scored at all, in prediction or truth.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from segsort.boundaries import BoundaryCounts, match_boundaries, segmentation_boundaries
from segsort.io import IGNORE_LABEL

BOUNDARY_MAX_DISTANCE = 0.01  # of the image diagonal (supplementary 6.4)


def confusion_matrix(prediction: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(truth x prediction) pixel counts over the labelled pixels of one image."""
    valid = labels != IGNORE_LABEL
    index = labels[valid].astype(np.int64) * num_classes + prediction[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray) -> dict:
    """Per-class IoU (None for a class absent from both prediction and truth), mIoU over the others,
    and pixel accuracy, from a (truth x prediction) confusion matrix accumulated over the dataset."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    present = [v for v in iou if v is not None]
    return {"per_class_iou": iou, "miou": float(np.mean(present)) if present else 0.0,
            "pixel_accuracy": float(tp.sum() / max(confusion.sum(), 1))}


def class_boundary_counts(prediction: np.ndarray, labels: np.ndarray, num_classes: int,
                          max_distance: float = BOUNDARY_MAX_DISTANCE) -> list[BoundaryCounts]:
    """Per class, the boundary pixels of its prediction and truth regions in one image and how many of
    each are matched (see the module docstring for void)."""
    counts = [BoundaryCounts() for _ in range(num_classes)]
    void = labels == IGNORE_LABEL
    if void.all():
        return counts
    truth, scored = labels, np.ones(labels.shape, dtype=bool)
    if void.any():
        distance, (rows, cols) = ndimage.distance_transform_edt(void, return_indices=True)
        truth = labels[rows, cols]
        scored = distance <= max_distance * np.hypot(*labels.shape)
    for c in np.union1d(np.unique(prediction), np.unique(truth[scored])):
        if c >= num_classes:
            raise ValueError(f"class id {c} out of range (expected 0..{num_classes - 1})")
        machine = segmentation_boundaries(prediction == c) & scored
        human = segmentation_boundaries(truth == c) & scored
        counts[c] = match_boundaries(machine, [human], max_distance)
    return counts


def boundary_scores(counts: list[BoundaryCounts]) -> dict:
    """Per-class boundary precision/recall/F from counts summed over a set (None for a class with no
    boundary in prediction or truth), and their means over the scored classes."""
    per_class = [None if c.machine + c.human == 0 else
                 {"precision": c.precision, "recall": c.recall, "f_measure": c.f_measure} for c in counts]
    scored = [s for s in per_class if s is not None]
    mean = {key: float(np.mean([s[key] for s in scored])) if scored else 0.0
            for key in ("precision", "recall", "f_measure")}
    return {"per_class_boundary": per_class, "boundary_precision": mean["precision"],
            "boundary_recall": mean["recall"], "boundary_f": mean["f_measure"]}
