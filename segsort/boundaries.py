"""Boundary benchmarks in the style of BSDS500 (Martin et al. 2004; Arbelaez et al. 2011).

A machine boundary pixel is correct when it is matched one-to-one to a human boundary pixel within a
distance of `max_distance` times the image diagonal (0.0075 in the BSDS benchmark). The matching is
higra's reimplementation of the benchmark's `correspondPixels` (minimum-cost maximum bipartite matching).
With several human segmentations of one image, as in BSDS500:

- recall counts the human boundary pixels matched, summed over all the humans;
- precision counts the machine pixels matched to at least one human.

Counts are summed over images before P, R and F are taken (the benchmark's "dataset" scores).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.morphology import thin

BSDS_MAX_DISTANCE = 0.0075


def segmentation_boundaries(labels: np.ndarray) -> np.ndarray:
    """Boundary pixels of a label map: bool (H, W), True where the right or lower neighbour differs.

    This puts each boundary on one side of the border, one pixel thick, as the benchmark's seg2bdry does.
    """
    labels = np.asarray(labels)
    boundary = np.zeros(labels.shape, dtype=bool)
    boundary[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    boundary[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return boundary


@dataclass
class BoundaryCounts:
    """What the BSDS benchmark accumulates: matched/total machine pixels and matched/total human pixels."""
    matched_machine: int = 0
    machine: int = 0
    matched_human: int = 0
    human: int = 0

    def __add__(self, other: "BoundaryCounts") -> "BoundaryCounts":
        return BoundaryCounts(self.matched_machine + other.matched_machine, self.machine + other.machine,
                              self.matched_human + other.matched_human, self.human + other.human)

    @property
    def precision(self) -> float:
        return self.matched_machine / self.machine if self.machine else 0.0

    @property
    def recall(self) -> float:
        return self.matched_human / self.human if self.human else 0.0

    @property
    def f_measure(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


def match_boundaries(machine: np.ndarray, humans: list[np.ndarray],
                     max_distance: float = BSDS_MAX_DISTANCE) -> BoundaryCounts:
    """Match one binary machine boundary map against each human boundary map of the same image."""
    import higra as hg  # here: importing higra loads matplotlib's pyplot (about 2 s of a stage's start), and
    #                     the stages that only import this module (banks, figures) never match boundaries
    machine = np.asarray(machine, dtype=bool)
    matched_machine = np.zeros(machine.size, dtype=bool)
    counts = BoundaryCounts(machine=int(machine.sum()))
    for human in humans:
        human = np.asarray(human, dtype=bool)
        if human.shape != machine.shape:
            raise ValueError(f"boundary maps differ in size: {machine.shape} vs {human.shape}")
        counts.human += int(human.sum())
        if machine.any() and human.any():
            sources, targets = hg.match_pixels_image_2d(machine.astype(np.uint8), human.astype(np.uint8),
                                                        max_distance, "relative")
            matched_machine[sources] = True
            counts.matched_human += len(targets)
    counts.matched_machine = int(matched_machine.sum())
    return counts


def contour_counts(contours: np.ndarray, humans: list[np.ndarray], thresholds: np.ndarray,
                   max_distance: float = BSDS_MAX_DISTANCE) -> list[BoundaryCounts]:
    """Counts of a soft contour map at each threshold: binarised (>= t), thinned to one pixel, matched."""
    return [match_boundaries(thin(contours >= t), humans, max_distance) for t in thresholds]


@dataclass
class ContourScores:
    ods: float             # best F of the summed counts, one threshold for the whole set
    ods_threshold: float
    ods_precision: float
    ods_recall: float
    ois: float             # F of the counts summed at each image's own best threshold


def contour_scores(per_image: list[list[BoundaryCounts]], thresholds: np.ndarray) -> ContourScores:
    """ODS and OIS from per-image counts at each threshold (the BSDS benchmark's best threshold, without its
    interpolation between neighbouring thresholds)."""
    if not per_image:
        raise ValueError("no images to score")
    totals = [sum((image[i] for image in per_image), BoundaryCounts()) for i in range(len(thresholds))]
    best = max(range(len(thresholds)), key=lambda i: totals[i].f_measure)
    ois = sum((max(image, key=lambda c: c.f_measure) for image in per_image), BoundaryCounts())
    return ContourScores(totals[best].f_measure, float(thresholds[best]), totals[best].precision,
                         totals[best].recall, ois.f_measure)


def achievable_segmentation_accuracy(segments: np.ndarray, labels: np.ndarray, ignore: int = 255) -> tuple[int, int]:
    """(correct, total) labelled pixels when every segment takes the majority class of its labelled pixels.

    The upper bound on pixel accuracy of any method that labels whole segments.
    """
    segments = np.asarray(segments).ravel().astype(np.int64)
    labels = np.asarray(labels).ravel().astype(np.int64)
    if segments.shape != labels.shape:
        raise ValueError(f"segments and labels differ in size: {segments.shape} vs {labels.shape}")
    valid = labels != ignore
    segments, labels = segments[valid], labels[valid]
    if not len(labels):
        return 0, 0
    _, segments = np.unique(segments, return_inverse=True)
    histogram = np.zeros((segments.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(histogram, (segments, labels), 1)
    return int(histogram.max(axis=1).sum()), int(len(labels))
