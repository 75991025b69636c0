"""Datasets: class names per dataset, and readers of the VOC layout every dataset is converted to."""
from __future__ import annotations


def class_names(dataset: str) -> tuple[str, ...]:
    if dataset == "tiny":
        from segsort.data.tiny import TINY_CLASSES
        return TINY_CLASSES
    raise ValueError(f"unknown dataset {dataset!r} (supported: tiny)")
