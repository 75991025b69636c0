"""Prototype bank extraction and kNN evaluation over a dataset split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from segsort.bank import Bank, write_bank
from segsort.data.voc import VOCLayout
from segsort.inference import (class_scores, confusion_matrix, knn_vote, labelled_prototypes, pixel_features,
                               query_prototypes, segment_image, segmentation_scores)


def segments_of(model, sample, features_kind: str, segsort_cfg: dict):
    features = pixel_features(model, sample.image, features_kind)
    return features, segment_image(features, segsort_cfg, sample.segments)


def bank_rows(model, dataset: VOCLayout, features_kind: str, segsort_cfg: dict):
    """Yield one labelled image's bank rows at a time (see segsort.bank.write_bank)."""
    for index in tqdm(range(len(dataset)), desc="bank", mininterval=5):
        sample = dataset[index]
        features, segments = segments_of(model, sample, features_kind, segsort_cfg)
        yield (sample.image_id, *labelled_prototypes(features, segments, sample.labels, dataset.num_classes))


def build_bank(model, dataset: VOCLayout, features_kind: str, segsort_cfg: dict, out: Path, attrs: dict) -> int:
    rows = bank_rows(model, dataset, features_kind, segsort_cfg)
    return write_bank(out, rows, model.feature_dim(features_kind), attrs)


def evaluate(model, dataset: VOCLayout, bank: Bank, features_kind: str, segsort_cfg: dict, k: int) -> dict:
    """Segment every image, label each segment by kNN against the bank, score against the ground truth."""
    def predict(sample):
        features, segments = segments_of(model, sample, features_kind, segsort_cfg)
        segment_labels, _ = knn_vote(query_prototypes(features, segments), bank.prototypes, bank.labels, k,
                                     dataset.num_classes)
        return segment_labels[segments].numpy().astype(np.uint8)

    return {**score(predict, dataset), "bank_size": len(bank.labels)}


def evaluate_softmax(model, dataset: VOCLayout) -> dict:
    """The softmax baseline: every pixel takes the arg max of its class scores (upsampled bilinearly)."""
    return score(lambda sample: class_scores(model, sample.image).argmax(0).numpy().astype(np.uint8), dataset)


def score(predict, dataset: VOCLayout) -> dict:
    """mIoU, per-class IoU and pixel accuracy of `predict` (sample -> (H, W) class ids) over the dataset."""
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    for index in tqdm(range(len(dataset)), desc="evaluate", mininterval=5):
        sample = dataset[index]
        confusion += confusion_matrix(predict(sample), sample.labels, dataset.num_classes)
    return {**segmentation_scores(confusion), "num_images": len(dataset)}
