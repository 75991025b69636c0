"""Prototype bank extraction and evaluation over a dataset split."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from segsort.bank import Bank, write_bank
from segsort.boundaries import BoundaryCounts
from segsort.data.voc import Sample, VOCLayout
from segsort.inference import (InferenceConfig, labelled_prototypes, pixel_features, segment_image,
                               segsort_labels, softmax_labels)
from segsort.metrics import boundary_scores, class_boundary_counts, confusion_matrix, segmentation_scores


def bank_rows(model, dataset: VOCLayout, features: str, grid: tuple[int, int], iterations: int):
    """Yield one labelled image's (image id, LabelledSegments) at a time (see segsort.bank.write_bank).

    Training images are segmented as in training: k-means on the features without the void pixels (or the
    given pseudo-segments). An images-only dataset (no classes) gives every segment label 0: its bank holds
    the prototypes of all segments, unlabelled.
    """
    for index in tqdm(range(len(dataset)), desc="bank", mininterval=5):
        sample = dataset[index]
        feature_maps = pixel_features(model, sample.image, features)
        segments = segment_image(feature_maps, grid, iterations, sample.segments, sample.labels)
        labels, num_classes = sample.labels, dataset.num_classes
        if labels is None:
            labels, num_classes = np.zeros(sample.image.shape[:2], np.uint8), 1
        yield sample.image_id, labelled_prototypes(feature_maps, segments, labels, num_classes)


def build_bank(model, dataset: VOCLayout, features: str, grid: tuple[int, int], iterations: int,
               out: Path, attrs: dict) -> int:
    rows = bank_rows(model, dataset, features, grid, iterations)
    return write_bank(out, rows, model.feature_dim(features), attrs)


def evaluate(model, dataset: VOCLayout, bank: Bank, features: str, config: InferenceConfig) -> dict:
    """Segment every image, label each segment by kNN against the bank, score against the ground truth."""
    def predict(sample: Sample) -> np.ndarray:
        return segsort_labels(model, sample.image, bank.prototypes, bank.labels, config, dataset.num_classes,
                              features, sample.segments)

    return {**score(predict, dataset), "bank_size": len(bank)}


def evaluate_softmax(model, dataset: VOCLayout, config: InferenceConfig) -> dict:
    """The softmax baseline: every pixel takes the arg max of its class probabilities."""
    return score(lambda sample: softmax_labels(model, sample.image, config), dataset)


def score(predict: Callable[[Sample], np.ndarray], dataset: VOCLayout) -> dict:
    """mIoU, per-class IoU, pixel accuracy and per-class boundary P/R/F (and their means over the classes,
    as the paper averages them) of `predict` (sample -> (H, W) class ids) over the dataset."""
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    boundaries = [BoundaryCounts() for _ in range(dataset.num_classes)]
    for index in tqdm(range(len(dataset)), desc="evaluate", mininterval=5):
        sample = dataset[index]
        prediction = predict(sample)
        confusion += confusion_matrix(prediction, sample.labels, dataset.num_classes)
        image_counts = class_boundary_counts(prediction, sample.labels, dataset.num_classes)
        boundaries = [total + counts for total, counts in zip(boundaries, image_counts)]
    return {**segmentation_scores(confusion), **boundary_scores(boundaries),
            "num_images": len(dataset)}
