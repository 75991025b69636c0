"""Softmax against SegSort predictions on the same images (paper Figures 4 and 14).

Each row is one validation image: image | ground truth | the softmax model's prediction | the SegSort
model's prediction, both predicted exactly as evaluation predicts them (segsort.evaluate). A prediction's
caption is that image's mIoU over the classes present in its ground truth or in the prediction, the
per-class IoU of segsort.metrics computed on the one image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from segsort.bank import Bank  # noqa: E402
from segsort.data.voc import Sample  # noqa: E402
from segsort.explain import PALETTE  # noqa: E402
from segsort.inference import InferenceConfig, segsort_labels, softmax_labels  # noqa: E402
from segsort.io import IGNORE_LABEL, DataError  # noqa: E402
from segsort.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from segsort.models import network_label  # noqa: E402

NETWORK_KEYS = ("backbone", "output_stride", "decoder", "decoder_channels")


def check_pair(softmax_path: Path, softmax_config: dict, segsort_path: Path, segsort_config: dict) -> None:
    """A pair is a softmax model then a SegSort model of the same network, as params list them."""
    if softmax_config["head"] != "softmax" or segsort_config["head"] != "segsort":
        raise DataError(f"pair [{softmax_path}, {segsort_path}]: expected a softmax model then a SegSort model, "
                        f"got a {softmax_config['head']} model then a {segsort_config['head']} model")
    differ = [k for k in NETWORK_KEYS if softmax_config.get(k) != segsort_config.get(k)]
    if differ:
        raise DataError(f"pair [{softmax_path}, {segsort_path}]: the two models are different networks "
                        f"(they differ in {differ})")


@dataclass
class ComparisonRow:
    network: str                # row label, e.g. "DeepLabv3+ / MNV2"
    sample: Sample
    softmax: np.ndarray         # (H, W) class ids
    segsort: np.ndarray


def compare_image(softmax_model, segsort_model, bank: Bank, sample: Sample, config: InferenceConfig,
                  num_classes: int) -> ComparisonRow:
    """Both models' predictions of one labelled image, by evaluation's own inference."""
    return ComparisonRow(network_label(segsort_model.config), sample,
                         softmax_labels(softmax_model, sample.image, config),
                         segsort_labels(segsort_model, sample.image, bank.prototypes, bank.labels, config, num_classes))


def image_miou(prediction: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    return segmentation_scores(confusion_matrix(prediction, labels, num_classes))["miou"]


def comparison_figure(rows: list[ComparisonRow], class_names: tuple[str, ...], path: str | Path, title: str) -> None:
    """One row per image: image | ground truth | softmax | SegSort, the label maps in the dataset palette
    (void in its light grey), each prediction captioned with the image's mIoU; a legend of the classes shown."""
    if not rows:
        raise DataError(f"{path}: no images to compare")
    num_classes = len(class_names)
    aspects = [row.sample.image.shape[0] / row.sample.image.shape[1] for row in rows]
    fig, axes = plt.subplots(len(rows), 4, figsize=(9.2, 2.1 * sum(aspects) + 0.4 * len(rows) + 1.2),
                             height_ratios=aspects, squeeze=False, layout="constrained")
    for r, (axes_row, row) in enumerate(zip(axes, rows)):
        truth = row.sample.labels
        panels = [(row.sample.image, "Image" if r == 0 else ""), (PALETTE[truth], "Ground truth" if r == 0 else ""),
                  (PALETTE[row.softmax], f"Softmax: mIoU {100 * image_miou(row.softmax, truth, num_classes):.1f}"),
                  (PALETTE[row.segsort], f"SegSort: mIoU {100 * image_miou(row.segsort, truth, num_classes):.1f}")]
        for ax, (picture, caption) in zip(axes_row, panels):
            ax.imshow(picture, interpolation="nearest")
            ax.set_title(caption, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes_row[0].set_ylabel(f"{row.network}\n{row.sample.image_id}", fontsize=9)
    shown = sorted(set().union(*(np.unique(m).tolist() for r in rows for m in (r.sample.labels, r.softmax, r.segsort))))
    names = {**dict(enumerate(class_names)), IGNORE_LABEL: "void"}
    handles = [Patch(facecolor=PALETTE[c] / 255, edgecolor="black", linewidth=0.5, label=names[c]) for c in shown]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=9, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
