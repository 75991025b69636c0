"""Prototype bank extraction and kNN evaluation over a dataset split."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from segsort.bank import Bank, write_bank
from segsort.data.voc import VOCLayout
from segsort.inference import (confusion_matrix, knn_vote, labelled_prototypes, pixel_features,
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
    confusion = np.zeros((dataset.num_classes, dataset.num_classes), dtype=np.int64)
    for index in tqdm(range(len(dataset)), desc="evaluate", mininterval=5):
        sample = dataset[index]
        features, segments = segments_of(model, sample, features_kind, segsort_cfg)
        segment_labels, _ = knn_vote(query_prototypes(features, segments), bank.prototypes, bank.labels, k,
                                     dataset.num_classes)
        prediction = segment_labels[segments].numpy().astype(np.uint8)
        confusion += confusion_matrix(prediction, sample.labels, dataset.num_classes)
    return {**segmentation_scores(confusion), "num_images": len(dataset), "bank_size": len(bank.labels)}
