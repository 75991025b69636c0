"""The prototype bank: every labelled training segment's prototype, with its provenance, in HDF5.

Schema (version 4; version 3 had no `additions` attribute; version 2 named the attribute `features`
`feature_kind`), one row per segment; all columns chunked and gzip-compressed:
  prototypes    float32 (S, D)  unit vectors: the segment's mean embedding over its support (below)
  labels        int16   (S,)    majority ground-truth class of the segment
  image_ids     str     (S,)    image the segment comes from
  segment_ids   int32   (S,)    id of the segment in that image's segmentation
  pixel_counts  int64   (S,)    support: pixels of the segment that carry its majority label
  bboxes        int32   (S, 4)  (top, left, bottom, right) of the support, bottom/right exclusive
  mask_offsets  int64   (S,)    where the segment's mask starts in `masks`
  masks         uint8   (M,)    every support mask, cropped to its bbox, np.packbits of the row-major crop
attributes: schema_version, features, feature_dim, num_classes, class_names (JSON), segmentation,
  model_sha256, params (JSON of the parameters that made it), dataset, dataset_root, split,
  additions (JSON list, `[]` as stages/build_bank.py writes it, so a built bank holds no time and stays
  byte-for-byte the same): one entry per folder grown into the bank by `segsort bank add` (segsort.grow):
  {"source": folder, "time": UTC ISO 8601, "model_sha256", "images", "segments", "rows": [first, end),
  "classes_added", "grid", "kmeans_iterations"}. An addition may append class names (class_names and
  num_classes grow with them); its rows' image_ids are ids of images in its source folder.
A bank of an older schema is refused, naming its version: rebuild it with stages/build_bank.py.

Rows are appended image by image, so writing never holds the bank in memory; reading loads only the
prototypes and labels (what kNN needs) and fetches the provenance of chosen rows on demand.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np
import torch

from segsort.checkpoint import file_sha256
from segsort.data import class_names
from segsort.inference import LabelledSegments
from segsort.io import DataError, atomic_path

SCHEMA_VERSION = 4
COLUMNS = {"prototypes": np.float32, "labels": np.int16, "segment_ids": np.int32, "pixel_counts": np.int64,
           "bboxes": np.int32, "mask_offsets": np.int64, "masks": np.uint8}
ROW_CHUNK = 4096
# What h5py raises for a damaged or foreign file: an unreadable chunk or superblock (OSError), object header
# (KeyError) or link table (RuntimeError).
H5_READ_ERRORS = (OSError, KeyError, RuntimeError)


def support_crops(support: np.ndarray, segment_ids: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bounding boxes (S, 4) and packed mask crops of each segment's support in an (H, W) id map."""
    bboxes, masks = np.zeros((len(segment_ids), 4), dtype=np.int32), []
    for row, segment in enumerate(segment_ids):
        ys, xs = np.nonzero(support == segment)
        top, left, bottom, right = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
        bboxes[row] = top, left, bottom, right
        masks.append(np.packbits(support[top:bottom, left:right] == segment))
    return bboxes, masks


def write_bank(path: str | Path, rows: Iterable[tuple[str, LabelledSegments]], feature_dim: int,
               attrs: dict) -> int:
    """Stream one (image id, LabelledSegments) per image into a new bank at `path`, atomically;
    returns the number of segments."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["feature_dim"] = feature_dim
        f.attrs["additions"] = "[]"
        for name, dtype in COLUMNS.items():
            tail = {"prototypes": (feature_dim,), "bboxes": (4,)}.get(name, ())
            chunk = 1 << 20 if name == "masks" else ROW_CHUNK
            f.create_dataset(name, shape=(0,) + tail, maxshape=(None,) + tail, dtype=dtype,
                             chunks=(chunk,) + tail, compression="gzip")
        f.create_dataset("image_ids", shape=(0,), maxshape=(None,), dtype=h5py.string_dtype(),
                         chunks=(ROW_CHUNK,), compression="gzip")
        total = append_rows(f, rows)
        if total == 0:
            raise DataError(f"{path}: the prototype bank would be empty: no training segment has a label")
    return total


def append_rows(f: h5py.File, rows: Iterable[tuple[str, LabelledSegments]]) -> int:
    """Append one (image id, LabelledSegments) per image to the open bank `f`; returns how many segments
    were appended (write_bank, and segsort.grow for a bank's additions)."""
    start = f["labels"].shape[0]
    for image_id, segments in rows:
        support, segment_ids = np.asarray(segments.support), np.asarray(segments.segment_ids)
        bboxes, masks = support_crops(support, segment_ids)
        sizes = np.array([len(m) for m in masks], dtype=np.int64)
        offsets = f["masks"].shape[0] + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        columns = {"prototypes": segments.prototypes, "labels": segments.labels, "segment_ids": segment_ids,
                   "pixel_counts": segments.pixel_counts, "bboxes": bboxes, "mask_offsets": offsets,
                   "masks": np.concatenate(masks) if masks else np.zeros(0, np.uint8),
                   "image_ids": np.array([image_id] * len(segment_ids), dtype=object)}
        for name, values in columns.items():
            _append(f[name], np.asarray(values))
    return f["labels"].shape[0] - start


def _append(column: h5py.Dataset, values: np.ndarray) -> None:
    start = column.shape[0]
    column.resize(start + len(values), axis=0)
    column[start:] = values


@contextmanager
def read_errors(path: Path, what: str):
    """h5py's errors of a damaged bank file, raised inside, as a DataError naming the file and `what` could
    not be read."""
    try:
        yield
    except H5_READ_ERRORS as err:
        raise DataError(f"{path}: cannot read prototype bank {what} ({err}); the file is damaged or not a "
                        f"bank: rebuild it") from err


def read_column(f: h5py.File, name: str, rows: int | slice = slice(None)) -> np.ndarray:
    """f[name][rows], or a DataError naming the file, the column and the rows if the file is damaged there."""
    where = (f"row {rows}" if isinstance(rows, int) else "all rows" if rows == slice(None)
             else f"rows {rows.start} to {rows.stop - 1}")
    with read_errors(Path(f.filename), f"column {name} ({where})"):
        return f[name][rows]


@dataclass
class Provenance:
    """Where one bank prototype comes from, with its support mask (True inside the bbox crop)."""
    index: int
    image_id: str
    segment_id: int
    label: int
    pixel_count: int
    bbox: tuple[int, int, int, int]
    mask: np.ndarray
    source: Path | None = None  # the folder of an addition (segsort bank add) it came from; None: the bank's dataset


@dataclass
class Bank:
    path: Path
    prototypes: torch.Tensor  # (S, D)
    labels: torch.Tensor      # (S,) int64
    attrs: dict

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> "Bank":
        """The bank with its prototypes and labels on `device`: moved once, not once per query."""
        return replace(self, prototypes=self.prototypes.to(device), labels=self.labels.to(device))

    def provenance(self, indices: Iterable[int]) -> list[Provenance]:
        """The provenance of the given rows, read from the file (the bank is not held in memory)."""
        found, additions = [], json.loads(self.attrs.get("additions", "[]"))
        with read_errors(self.path, "provenance"), h5py.File(self.path, "r") as f:
            for index in map(int, indices):
                top, left, bottom, right = (int(v) for v in read_column(f, "bboxes", index))
                start, shape = int(read_column(f, "mask_offsets", index)), (bottom - top, right - left)
                packed = read_column(f, "masks", slice(start, start + (shape[0] * shape[1] + 7) // 8))
                mask = np.unpackbits(packed, count=shape[0] * shape[1]).reshape(shape).astype(bool)
                image_id = read_column(f, "image_ids", index)
                found.append(Provenance(index, image_id.decode() if isinstance(image_id, bytes) else image_id,
                                        *(int(read_column(f, name, index)) for name in
                                          ("segment_ids", "labels", "pixel_counts")),
                                        (top, left, bottom, right), mask, addition_source(additions, index)))
        return found


def addition_source(additions: list[dict], index: int) -> Path | None:
    """The source folder of the addition that appended row `index`, None for a row the bank was built with."""
    return next((Path(a["source"]) for a in additions if a["rows"][0] <= index < a["rows"][1]), None)


def bank_attributes(f: h5py.File) -> dict:
    """The attributes of an open bank, refused in one line naming the file unless it is of this schema with
    every column: the one place a bank's schema is checked."""
    path = Path(f.filename)
    with read_errors(path, "attributes"):
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        missing = [name for name in list(COLUMNS) + ["image_ids"] if name not in f]
    version = attrs.get("schema_version")
    if isinstance(version, (int, np.integer)) and version < SCHEMA_VERSION:
        raise DataError(f"{path}: prototype bank of schema version {version}, older than version {SCHEMA_VERSION} "
                        f"that segsort reads: rebuild it with stages/build_bank.py")
    missing += [name for name in ("additions",) if name not in attrs]
    if version != SCHEMA_VERSION or missing:
        raise DataError(f"{path}: not a version-{SCHEMA_VERSION} prototype bank (schema version {version}, "
                        f"missing {missing}): rebuild it with stages/build_bank.py")
    return attrs


def read_bank(path: str | Path, expect: dict) -> Bank:
    """Read a bank's prototypes and labels, checking its schema and refusing one whose attributes differ
    from `expect` (e.g. another model or dimension)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prototype bank is missing")
    with read_errors(path, "attributes and columns"), h5py.File(path, "r") as f:
        attrs = bank_attributes(f)
        for key, value in expect.items():
            if attrs.get(key) != value:
                raise DataError(f"{path}: bank {key} is {attrs.get(key)!r} but {value!r} is expected; "
                                f"rebuild the bank for this model")
        rows = f["labels"].shape[0]
        shapes = {name: f[name].shape for name in COLUMNS if name != "masks"} | {"image_ids": f["image_ids"].shape}
        if any(shape[0] != rows for shape in shapes.values()) or f["prototypes"].shape[1:] != (attrs["feature_dim"],):
            raise DataError(f"{path}: bank columns disagree in length or width: {shapes}")
        prototypes, labels = read_column(f, "prototypes"), read_column(f, "labels")
    return Bank(path, torch.from_numpy(prototypes), torch.from_numpy(labels.astype(np.int64)), attrs)


def bank_identity(model_path: Path, features: str, segments_dir: Path | None, dataset: str,
                  datasets: dict | None = None) -> dict:
    """What a bank records about its making, and what evaluation insists on when it reads one back
    (`datasets`: params.yaml `datasets`, where a dataset of your own declares its classes)."""
    return {"model_sha256": file_sha256(model_path), "features": features,
            "segmentation": "kmeans" if segments_dir is None else "pseudo_segments",
            "num_classes": len(class_names(dataset, datasets)), "dataset": dataset}


def read_model_bank(path: str | Path, model_path: Path, model, dataset: str, features: str = "embedding",
                    segments_dir: Path | None = None, datasets: dict | None = None) -> Bank:
    """The bank at `path`, refused unless that model file made it with these features, segmentation, dataset
    and the model's feature dimension: what every stage that reads a model's bank insists on."""
    return read_bank(path, expect={**bank_identity(model_path, features, segments_dir, dataset, datasets),
                                   "feature_dim": model.feature_dim(features)})


def params_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True)
