"""Datasets: class names per dataset, and readers of the VOC layout every dataset is converted to."""
from __future__ import annotations


def class_names(dataset: str, datasets: dict | None = None) -> tuple[str, ...]:
    """The class names of a built-in dataset, or of one of your own declared in params.yaml `datasets`
    (passed as `datasets`; an images-only dataset has none)."""
    if datasets and dataset in datasets:
        return tuple(datasets[dataset].get("classes") or ())
    if dataset == "tiny":
        from segsort.data.tiny import TINY_CLASSES
        return TINY_CLASSES
    if dataset == "voc2012":
        from segsort.data.pascal import VOC_CLASSES
        return VOC_CLASSES
    if dataset == "cityscapes":
        from segsort.data.cityscapes import CITYSCAPES_CLASSES
        return CITYSCAPES_CLASSES
    raise ValueError(f"unknown dataset {dataset!r} (built in: tiny, voc2012, cityscapes; yours: params.yaml datasets)")
