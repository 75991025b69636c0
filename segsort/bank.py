"""The prototype bank: every labelled training segment's prototype, with its provenance, in HDF5.

Schema (version 1), one row per segment:
  prototypes  float32 (S, D)  unit vectors
  labels      int16   (S,)    majority ground-truth class
  image_ids   str     (S,)    image the segment comes from
  segment_ids int32   (S,)    id of the segment in that image's segmentation
  pixel_counts int64  (S,)    pixels that carry the majority label
attributes: schema_version, feature_kind, feature_dim, num_classes, segmentation, model_sha256,
  params (JSON of the parameters that made it), dataset, split.
Rows are appended image by image, so the bank never has to be held in memory while it is written.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np
import torch

from segsort.checkpoint import file_sha256
from segsort.data import class_names
from segsort.io import DataError, atomic_path

SCHEMA_VERSION = 1
COLUMNS = {"prototypes": np.float32, "labels": np.int16, "segment_ids": np.int32, "pixel_counts": np.int64}


def write_bank(path: str | Path, rows: Iterable[tuple], feature_dim: int, attrs: dict) -> int:
    """Stream `rows` into a new bank at `path` (atomically); returns the number of segments.

    Each item of `rows` is one image's (image_id, segment_ids, labels, pixel_counts, prototypes).
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["feature_dim"] = feature_dim
        for name, dtype in COLUMNS.items():
            shape = (0, feature_dim) if name == "prototypes" else (0,)
            f.create_dataset(name, shape=shape, maxshape=(None,) + shape[1:], dtype=dtype,
                             chunks=(4096,) + shape[1:], compression="gzip")
        f.create_dataset("image_ids", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(),
                         chunks=(4096,), compression="gzip")
        for image_id, segment_ids, labels, pixel_counts, prototypes in rows:
            columns = {"prototypes": prototypes, "labels": labels, "segment_ids": segment_ids,
                       "pixel_counts": pixel_counts}
            for name, values in columns.items():
                _append(f[name], values.numpy() if isinstance(values, torch.Tensor) else values)
            _append(f["image_ids"], np.array([image_id] * len(labels), dtype=object))
        total = f["labels"].shape[0]
        if total == 0:
            raise DataError(f"{path}: the prototype bank would be empty: no training segment has a label")
    return total


def _append(column: h5py.Dataset, values: np.ndarray) -> None:
    start = column.shape[0]
    column.resize(start + len(values), axis=0)
    column[start:] = values


@dataclass
class Bank:
    prototypes: torch.Tensor
    labels: torch.Tensor
    image_ids: list[str]
    segment_ids: np.ndarray
    pixel_counts: np.ndarray
    attrs: dict


def read_bank(path: str | Path, expect: dict) -> Bank:
    """Read a bank, refusing one whose attributes differ from `expect` (e.g. another model or dimension)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prototype bank is missing")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
            missing = [name for name in list(COLUMNS) + ["image_ids"] if name not in f]
            if attrs.get("schema_version") != SCHEMA_VERSION or missing:
                raise DataError(f"{path}: not a version-{SCHEMA_VERSION} prototype bank (missing {missing})")
            for key, value in expect.items():
                if attrs.get(key) != value:
                    raise DataError(f"{path}: bank {key} is {attrs.get(key)!r} but {value!r} is expected; "
                                    f"rebuild the bank for this model")
            return Bank(prototypes=torch.from_numpy(f["prototypes"][:]),
                        labels=torch.from_numpy(f["labels"][:].astype(np.int64)),
                        image_ids=[s.decode() if isinstance(s, bytes) else s for s in f["image_ids"][:]],
                        segment_ids=f["segment_ids"][:], pixel_counts=f["pixel_counts"][:],
                        attrs=attrs)
    except OSError as err:
        raise DataError(f"{path}: cannot read prototype bank ({err})") from err


def bank_identity(model_path: Path, feature_kind: str, segments_dir: Path | None, dataset: str) -> dict:
    """What a bank records about its making, and what evaluation insists on when it reads one back."""
    return {"model_sha256": file_sha256(model_path), "feature_kind": feature_kind,
            "segmentation": "kmeans" if segments_dir is None else "pseudo_segments",
            "num_classes": len(class_names(dataset)), "dataset": dataset}


def params_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True)
