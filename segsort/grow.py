"""Growing a prototype bank (`segsort bank add`): the labelled segments of a folder of images and masks,
appended to an existing bank with the model that made it.

The folder is read as `segsort check-dataset` reads it (segsort.data.own: VOC layout, or a dataset of your
own with any image suffix and RGB masks of a declared palette), and is refused, naming the file, if that
check finds any problem. Its images are segmented as stages/build_bank.py segments a training image
(segsort.evaluate.bank_rows: k-means on the embedding with the bank's grid and iterations, void pixels left
out; each segment's majority label; its prototype over the pixels that carry it). The masks' class ids
are mapped to the bank's by name; names the bank does not have are appended with new ids.

Every refusal comes before anything is written, and the grown bank is written as a copy that replaces the
bank (or becomes --out) only when complete (segsort.io.atomic_path): a refused or interrupted addition
leaves the bank as it was.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

from segsort.bank import append_rows, bank_attributes, read_errors
from segsort.checkpoint import file_sha256, load_model
from segsort.data.own import check_dataset, image_files, mask_ids, problems_count, read_split_lists, test_only_ids
from segsort.data.voc import Sample
from segsort.evaluate import bank_rows
from segsort.io import IGNORE_LABEL, DataError, atomic_path, read_image

MAX_CLASSES = IGNORE_LABEL  # class ids are stored in uint8 label maps, 255 being void


@dataclass
class FolderSamples:
    """The labelled images of a folder, their masks' ids mapped to the bank's: what bank_rows reads."""
    root: Path
    ids: list[str]
    images: dict[str, Path]
    palette: list[list[int]] | None
    to_bank: np.ndarray  # (256,) uint8: folder class id -> bank class id, void to void
    num_classes: int     # the grown bank's

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Sample:
        image_id = self.ids[index]
        ids = mask_ids(self.root / "SegmentationClass" / f"{image_id}.png", self.palette)
        return Sample(image_id, read_image(self.images[image_id]), self.to_bank[ids], None)


def read_bank_attributes(bank: Path) -> dict:
    """The bank's attributes, refused unless it is a bank of this schema (segsort.bank.bank_attributes)."""
    if not bank.is_file():
        raise DataError(f"{bank}: prototype bank is missing")
    with read_errors(bank, "attributes"), h5py.File(bank, "r") as f:
        return bank_attributes(f)


def grown_classes(bank: Path, bank_names: list[str], folder_names: list[str]) -> tuple[list[str], np.ndarray]:
    """The bank's class names with the folder's new ones appended, and the (256,) map of folder ids to them."""
    twice = sorted({name for name in folder_names if folder_names.count(name) > 1})
    if twice:
        raise DataError(f"--classes: {', '.join(twice)} named more than once")
    grown = bank_names + [name for name in folder_names if name not in bank_names]
    if len(grown) > MAX_CLASSES:
        raise DataError(f"{bank}: would hold {len(grown)} classes; at most {MAX_CLASSES} fit its label maps")
    to_bank = np.full(256, IGNORE_LABEL, np.uint8)
    to_bank[:len(folder_names)] = [grown.index(name) for name in folder_names]
    return grown, to_bank


def folder_ids(folder: Path, split: str | None) -> list[str]:
    """The ids of the folder's labelled images: those of split list `split`, or every image with a mask."""
    images, _ = image_files(folder)
    lists, _ = read_split_lists(folder)
    if split is not None:
        if split not in lists:
            raise DataError(f"{folder / 'ImageSets' / 'Segmentation' / f'{split}.txt'}: no such split list "
                            f"(there are: {', '.join(sorted(lists)) or 'none'})")
        if split == "test" and set(lists[split]) <= test_only_ids(lists):
            raise DataError(f"{folder}: the images of split test have no masks to add")
        return lists[split]
    unlabelled = test_only_ids(lists)
    return [image_id for image_id in sorted(images) if image_id not in unlabelled]


def segmentation_settings(attrs: dict, params: dict) -> tuple[tuple[int, int], int, str, str]:
    """The k-means grid, iterations, grid blocks and location scale the bank's segments were made with
    (recorded in its `params`), or where it does not record them those of the active preset (`params`), as
    stages/build_bank.py uses them."""
    recorded = json.loads(attrs.get("params") or "{}")
    segsort = {**params["segsort"], **recorded.get("segsort", {})}
    return (tuple(segsort["grid"]), recorded.get("kmeans_iterations", params["inference"]["kmeans_iterations"]),
            segsort["grid_blocks"], recorded.get("bank_locations", params["inference"]["bank_locations"]))


def add_folder(bank: Path, model_path: Path, folder: Path, params: dict, device,
               classes: list[str] | None = None, palette: list[list[int]] | None = None,
               split: str | None = None, out: Path | None = None) -> dict:
    """Append the labelled segments of `folder` to `bank` (atomically), or write the grown bank to `out` and
    leave `bank` as it is; returns the addition's record.

    classes: the folder's class names in the order of its masks' ids (None: the masks use the bank's ids);
    palette: the colours of an RGB mask's classes. DataError, the bank unchanged, for a bank of an older
    schema, of pseudo-segments or without classes, of another model, or a folder with any problem.
    """
    attrs = read_bank_attributes(bank)
    if attrs.get("segmentation") != "kmeans":
        raise DataError(f"{bank}: a bank of {attrs.get('segmentation')} segments; only a bank of k-means "
                        f"segments can grow (new images have no pseudo-segments)")
    bank_names = json.loads(attrs["class_names"])
    if not bank_names:
        raise DataError(f"{bank}: an images-only bank (no class names): its segments carry no labels to add to")
    if not model_path.is_file():
        raise DataError(f"{model_path}: checkpoint is missing")
    model_sha256 = file_sha256(model_path)
    if model_sha256 != attrs["model_sha256"]:
        raise DataError(f"{bank}: made by another model (model_sha256 {attrs['model_sha256'][:12]}...), not "
                        f"{model_path} ({model_sha256[:12]}...): give --model the bank's model")
    names = bank_names if classes is None else list(classes)
    grown, to_bank = grown_classes(bank, bank_names, names)
    problems = check_dataset(folder, names, palette)
    if problems:
        raise DataError(f"{problems[0]} ({problems_count(problems)} in {folder}: see segsort check-dataset); "
                        f"nothing added to {bank}")
    images, _ = image_files(folder)
    ids = folder_ids(folder, split)
    grid, iterations, grid_blocks, locations = segmentation_settings(attrs, params)
    model = load_model(model_path).to(device)
    if model.feature_dim(attrs["features"]) != attrs["feature_dim"]:
        raise DataError(f"{bank}: features of dimension {attrs['feature_dim']}, but {model_path} gives "
                        f"{model.feature_dim(attrs['features'])}")
    samples = FolderSamples(folder, ids, images, palette, to_bank, len(grown))
    rows = bank_rows(model, samples, attrs["features"], grid, iterations, grid_blocks, locations)
    with atomic_path(out or bank) as tmp:
        shutil.copyfile(bank, tmp)
        with h5py.File(tmp, "a") as f:
            start = f["labels"].shape[0]
            count = append_rows(f, rows)
            if count == 0:
                raise DataError(f"{folder}: no segment of its {len(ids)} images has a label; nothing added to {bank}")
            addition = {"source": str(folder.resolve()), "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "model_sha256": model_sha256, "images": len(ids), "segments": count,
                        "rows": [start, start + count], "classes_added": grown[len(bank_names):],
                        "grid": list(grid), "kmeans_iterations": iterations}
            f.attrs["class_names"] = json.dumps(grown)
            f.attrs["num_classes"] = len(grown)
            f.attrs["additions"] = json.dumps(json.loads(f.attrs["additions"]) + [addition])
    return addition
