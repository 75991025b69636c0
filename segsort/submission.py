"""Test-split predictions packaged for a dataset's evaluation server (Table 7 is Cityscapes test; the
test rows of Tables 1 and 8 are VOC 2012 test): the test labels are not public, so the pipeline writes
the package and the table points to it."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from tqdm import tqdm

from segsort.data.voc import Sample, VOCLayout
from segsort.io import DataError, atomic_path, voc_palette

# Where each dataset's package is scored, and its file layout (VOC: the server's results folder for
# competition 6, "trained on any data": our models start from ImageNet and train on SBD).
SERVERS = {
    "voc2012": "the PASCAL VOC evaluation server (host.robots.ox.ac.uk), Segmentation comp6",
    "cityscapes": "the Cityscapes benchmark server (www.cityscapes-dataset.com/submit), pixel-level semantic labeling",
    "tiny": "no server: the tiny dataset's test labels ship with it, the package shows the format",
}
VOC_RESULTS = "results/VOC2012/Segmentation/comp6_test_cls"
FIXED_TIME = (2019, 10, 27, 0, 0, 0)  # every member's timestamp, so the same predictions give the same bytes


def package_member(dataset_name: str, image_id: str) -> str:
    return f"{image_id}.png" if dataset_name == "cityscapes" else f"{VOC_RESULTS}/{image_id}.png"


def encode_prediction(dataset_name: str, labels: np.ndarray) -> bytes:
    """PNG bytes in the server's format: Cityscapes wants label ids (not train ids) as grey levels; VOC
    wants class ids in a palette PNG."""
    buffer = io.BytesIO()
    if dataset_name == "cityscapes":
        from segsort.data.cityscapes import train_to_label_ids
        Image.fromarray(train_to_label_ids(labels)).save(buffer, format="PNG")
    else:
        image = Image.fromarray(labels.astype(np.uint8), mode="P")
        image.putpalette(voc_palette())
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_submission(predict: Callable[[Sample], np.ndarray], dataset: VOCLayout, dataset_name: str,
                     out: Path) -> int:
    """Predict every image of `dataset` and write the zip the dataset's server takes; returns the count."""
    if len(dataset) == 0:
        raise DataError(f"{dataset.root}: split {dataset.split!r} lists no images")
    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as package:
        for index in tqdm(range(len(dataset)), desc="submission", mininterval=5):
            sample = dataset[index]
            member = zipfile.ZipInfo(package_member(dataset_name, sample.image_id), FIXED_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            package.writestr(member, encode_prediction(dataset_name, predict(sample)))
    return len(dataset)
