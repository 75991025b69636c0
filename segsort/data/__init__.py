"""Datasets: class names per dataset, and readers of the VOC layout every dataset is converted to."""
from __future__ import annotations

from segsort.io import DataError


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


def hidden_class(params: dict) -> tuple[str, int]:
    """The active dataset's class of the hidden-class experiment (params.yaml `hidden_class.classes`) and its
    id; DataError naming the key where the dataset has none or its classes lack it."""
    dataset = params["dataset"]
    name = params["hidden_class"]["classes"].get(dataset)
    names = class_names(dataset, params["datasets"])
    if name is None:
        raise DataError(f"params.yaml: hidden_class.classes names no class for dataset {dataset!r}")
    if name not in names:
        raise DataError(f"params.yaml: hidden_class.classes.{dataset}: {name!r} is not a class of {dataset} "
                        f"({', '.join(names) or 'it has none'})")
    return name, names.index(name)
