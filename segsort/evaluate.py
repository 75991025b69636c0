"""Prototype bank extraction and evaluation over a dataset split."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from segsort.bank import Bank, write_bank
from segsort.boundaries import BoundaryCounts
from segsort.data.voc import Sample, VOCLayout
from segsort.inference import (InferenceConfig, labelled_prototypes, pixel_features, segment_count,
                               segment_image, segsort_labels, softmax_labels, sweep_labels)
from segsort.metrics import boundary_scores, class_boundary_counts, confusion_matrix, segmentation_scores


def bank_rows(model, dataset: VOCLayout, features: str, grid: tuple[int, int], iterations: int,
              grid_blocks: str = "fixed_size", locations: str = "last_pixel"):
    """Yield one labelled image's (image id, LabelledSegments) at a time (see segsort.bank.write_bank).

    Training images are segmented as in training: k-means on the features without the void pixels (or the
    given pseudo-segments), the grid cut as `grid_blocks` says, location features scaled as `locations` says
    (params.yaml inference.bank_locations; the release's bank: "last_pixel"). An images-only dataset (no classes) gives every segment label 0: its bank holds
    the prototypes of all segments, unlabelled.
    """
    for index in tqdm(range(len(dataset)), desc="bank", mininterval=5):
        sample = dataset[index]
        feature_maps = pixel_features(model, sample.image, features)
        segments = segment_image(feature_maps, grid, iterations, sample.segments, sample.labels, grid_blocks, locations)
        labels, num_classes = sample.labels, dataset.num_classes
        if labels is None:
            labels, num_classes = np.zeros(sample.image.shape[:2], np.uint8), 1
        yield sample.image_id, labelled_prototypes(feature_maps, segments, labels, num_classes,
                                                   segment_count(grid, sample.segments))


def build_bank(model, dataset: VOCLayout, features: str, grid: tuple[int, int], iterations: int,
               out: Path, attrs: dict, grid_blocks: str = "fixed_size", locations: str = "last_pixel") -> int:
    rows = bank_rows(model, dataset, features, grid, iterations, grid_blocks, locations)
    return write_bank(out, rows, model.feature_dim(features), attrs)


def evaluate(model, dataset: VOCLayout, bank: Bank, features: str, config: InferenceConfig) -> dict:
    """Segment every image, label each segment by kNN against the bank, score against the ground truth."""
    def predict(sample: Sample) -> np.ndarray:
        return segsort_labels(model, sample.image, bank.prototypes, bank.labels, config, dataset.num_classes,
                              features, sample.segments)

    return {**score(predict, dataset), "bank_size": len(bank)}


def evaluate_sweep(model, dataset: VOCLayout, bank: Bank, features: str,
                   configs: list[InferenceConfig]) -> list[dict]:
    """evaluate() with each config (k-means iterations and k of kNN may differ; see sweep_votes), the
    network run once per image for all of them."""
    def predict(sample: Sample) -> list[np.ndarray]:
        return sweep_labels(model, sample.image, bank.prototypes, bank.labels, configs, dataset.num_classes,
                            features, sample.segments)

    return [{**scores, "bank_size": len(bank)} for scores in score_each(predict, dataset, len(configs))]


def metrics_record(model_name: str, split: str, inference: dict, settings: dict, scores: dict,
                   class_names: list[str]) -> dict:
    """The metrics JSON of one evaluation (stages/evaluate.py, each setting of stages/inference_sweep.py):
    the scores, their per-class lists keyed by class name, and what made them."""
    return {"model": model_name, "split": split, "inference": inference, **settings, **scores,
            "per_class_iou": dict(zip(class_names, scores["per_class_iou"])),
            "per_class_boundary": dict(zip(class_names, scores["per_class_boundary"]))}


def evaluate_softmax(model, dataset: VOCLayout, config: InferenceConfig) -> dict:
    """The softmax baseline: every pixel takes the arg max of its class probabilities."""
    return score(lambda sample: softmax_labels(model, sample.image, config), dataset)


def score(predict: Callable[[Sample], np.ndarray], dataset: VOCLayout) -> dict:
    """mIoU, per-class IoU, pixel accuracy and per-class boundary P/R/F (and their means over the classes,
    as the paper averages them) of `predict` (sample -> (H, W) class ids) over the dataset."""
    return score_each(lambda sample: [predict(sample)], dataset, 1)[0]


def score_each(predict: Callable[[Sample], list[np.ndarray]], dataset: VOCLayout, count: int) -> list[dict]:
    """score() of each of the `count` predictions `predict` makes of every sample."""
    confusions = [np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64) for _ in range(count)]
    boundaries = [[BoundaryCounts() for _ in range(dataset.num_classes)] for _ in range(count)]
    for index in tqdm(range(len(dataset)), desc="evaluate", mininterval=5):
        sample = dataset[index]
        for setting, prediction in enumerate(predict(sample)):
            confusions[setting] += confusion_matrix(prediction, sample.labels, dataset.num_classes)
            image_counts = class_boundary_counts(prediction, sample.labels, dataset.num_classes)
            boundaries[setting] = [total + counts for total, counts in zip(boundaries[setting], image_counts)]
    return [{**segmentation_scores(confusion), **boundary_scores(counts), "num_images": len(dataset)}
            for confusion, counts in zip(confusions, boundaries)]
