"""The hidden-class experiment (params.yaml `hidden_class`): what a non-parametric segmenter gains when new
labelled images join its bank, with no retraining.

A run is trained again with one class's pixels void in every training image, and its bank is built without
that class's segments (stages/train.py and stages/build_bank.py with --hide-class): the model has never been
told the class exists. Then the first 1, 5, 20... images of train_aug outside the bank split that show the
class are added to the bank by `segsort bank add`, and each grown bank is scored on val. The run trained
with the class, scored with its own bank, is the reference.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segsort.bank import read_bank
from segsort.data.voc import image_path
from segsort.figures import plt
from segsort.io import DataError, atomic_path, link_or_copy, read_id_list, read_label_map


def images_showing(root: Path, split: str, bank_split: str, class_id: int, min_share: float) -> list[str]:
    """The images of `split` outside `bank_split` whose masks give `class_id` at least `min_share` of their
    pixels, in the split list's order: the candidates to add to a bank that lacks the class."""
    lists = root / "ImageSets" / "Segmentation"
    in_bank = set(read_id_list(lists / f"{bank_split}.txt"))
    return [image_id for image_id in read_id_list(lists / f"{split}.txt") if image_id not in in_bank
            and (read_label_map(root / "SegmentationClass" / f"{image_id}.png") == class_id).mean() >= min_share]


def write_image_folder(root: Path, image_ids: list[str], out: Path) -> None:
    """A folder in VOC layout (JPEGImages/, SegmentationClass/) holding `image_ids` of the dataset at `root`:
    what `segsort bank add` reads. Written whole or not at all."""
    with atomic_path(out) as tmp:
        for folder in ("JPEGImages", "SegmentationClass"):
            (tmp / folder).mkdir(parents=True)
        for image_id in image_ids:
            image = image_path(root, image_id)
            link_or_copy(image, tmp / "JPEGImages" / image.name)
            link_or_copy(root / "SegmentationClass" / f"{image_id}.png", tmp / "SegmentationClass" / f"{image_id}.png")


def class_segments(bank: Path, class_id: int) -> int:
    """How many of the bank's segments carry `class_id`."""
    return int((read_bank(bank, expect={}).labels == class_id).sum())


def result_row(metrics: dict, source: Path, class_name: str, **columns) -> dict:
    """One row of the hidden-class table: the class's IoU and the mean IoU of the other classes, in %
    (`source`: the metrics file, named if it lacks the class)."""
    ious = metrics.get("per_class_iou", {})
    if class_name not in ious:
        raise DataError(f"{source}: no IoU of class {class_name!r}")
    others = [iou for name, iou in ious.items() if name != class_name]
    return {**columns, "kNN k": metrics["inference"]["knn_k"], "class IoU": round(100 * ious[class_name], 2),
            "other classes mIoU": round(100 * float(np.mean(others)), 2), "mIoU": round(100 * metrics["miou"], 2)}


def hidden_class_rows(references: list[Path], reference_bank: Path, grown: list[tuple[int, Path, Path]],
                      class_name: str, class_id: int) -> list[dict]:
    """The table: for each k of kNN (in the order of `references`), the reference run, then the hidden-class
    run with each number of images added. references: the reference run's metrics JSON at each k; grown:
    (images added, metrics JSON, bank) of the hidden-class run, every k's metrics."""
    segments = {bank: class_segments(bank, class_id) for bank in {reference_bank, *(bank for _, _, bank in grown)}}

    def row(path: Path, bank: Path, trained_with: str, images: int) -> dict:
        metrics = json.loads(path.read_text())
        return result_row(metrics, path, class_name, model=metrics["model"], **{
            "class": class_name, "trained with the class": trained_with, "images added": images,
            "class segments in bank": segments[bank]})

    by_k: dict[int, list[dict]] = {}
    for path in references:
        reference = row(path, reference_bank, "yes", 0)
        by_k.setdefault(reference["kNN k"], []).append(reference)
    for images, path, bank in sorted(grown, key=lambda item: item[0]):
        hidden = row(path, bank, "no", images)
        if hidden["kNN k"] not in by_k:
            raise DataError(f"{path}: scored with k = {hidden['kNN k']}, and no reference metrics are")
        by_k[hidden["kNN k"]].append(hidden)
    return [r for rows in by_k.values() for r in rows]


def hidden_class_figure(rows: list[dict], path: Path, title: str) -> None:
    """The class's IoU against the images added to the bank of the run that never saw the class, one line per
    k of kNN (dashed: the run trained with the class), and the other classes' mIoU at the first k."""
    ks = list(dict.fromkeys(row["kNN k"] for row in rows))
    fig, ax = plt.subplots(figsize=(5.4, 3.6))
    for index, k in enumerate(ks):
        reference, *grown = [row for row in rows if row["kNN k"] == k]
        x = np.arange(len(grown))
        columns = ["class IoU", "other classes mIoU"] if index == 0 else ["class IoU"]
        for column in columns:
            colour = ("tab:red", "tab:purple", "tab:orange")[index % 3] if column == "class IoU" else "tab:blue"
            label = f"{reference['class']} IoU" if column == "class IoU" else "other classes mIoU"
            ax.plot(x, [row[column] for row in grown], marker="o", color=colour, label=f"{label}, k = {k}")
            ax.axhline(reference[column], color=colour, linestyle="--", linewidth=1)
        ax.set_xticks(x, [str(row["images added"]) for row in grown])
    ax.plot([], [], color="grey", linestyle="--", linewidth=1, label="trained with the class")
    ax.set_xlabel(f"labelled images showing {rows[0]['class']} added to the bank (no retraining)")
    ax.set_ylabel("IoU on val (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
