"""Why a segment got its label (paper Figures 5 and 7): the training segments it was retrieved from.

Explanations are of the single-scale view: each k-means segment of the image, framed on the image,
next to its nearest prototypes of the bank, each redrawn from its training image (bank provenance:
image id, bbox and support mask) and framed in the colour of its label.
"""
from __future__ import annotations

import glob
import math
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from segsort.bank import Bank, Provenance  # noqa: E402
from segsort.boundaries import segmentation_boundaries  # noqa: E402
from segsort.data.voc import image_path  # noqa: E402
from segsort.inference import InferenceConfig  # noqa: E402
from segsort.io import IMAGE_SUFFIXES, DataError, read_image, voc_palette  # noqa: E402
from segsort.segmenter import Segment, image_segments  # noqa: E402

PALETTE = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)


@dataclass
class Query:
    """One segment of the explained image and what it retrieved."""
    mask: np.ndarray             # (H, W) bool
    label: int                   # the majority of its neighbours' labels
    votes: np.ndarray            # (C,) neighbour labels counted
    neighbours: list[Provenance]  # most similar first
    similarities: list[float]


def explain_image(model, image: np.ndarray, bank: Bank, config: InferenceConfig, num_classes: int,
                  max_segments: int, max_neighbours: int) -> list[Query]:
    """Up to `max_segments` segments of the image, each with its `max_neighbours` nearest prototypes.

    Segments are taken in turns from each predicted class, the class covering the least area first and
    the largest segment of a class first: objects get explained before the background's many pieces.
    """
    return explained_queries(image_segments(model, image, bank, config, num_classes, max_neighbours)[1],
                             max_segments)


def explained_queries(segments: list[Segment], max_segments: int) -> list[Query]:
    """Up to `max_segments` of an image's segments (segsort.segmenter), in the order explain_image says, as
    Queries with the neighbours each segment holds."""
    by_class: dict[int, list[Segment]] = {}
    for segment in sorted(segments, key=lambda s: -s.pixels):  # stable: the lower id first among equal sizes
        by_class.setdefault(segment.label, []).append(segment)
    classes = sorted(by_class, key=lambda c: (sum(s.pixels for s in by_class[c]), c))
    turns = zip_longest(*(by_class[c] for c in classes))
    chosen = [s for turn in turns for s in turn if s is not None][:max_segments]
    return [Query(s.mask, s.label, s.votes, [n.provenance for n in s.neighbours],
                  [n.similarity for n in s.neighbours]) for s in chosen]


def training_image(dataset_root: Path, image_id: str) -> np.ndarray:
    path = image_path(dataset_root, image_id)
    if not path.is_file():  # a folder grown into the bank (segsort bank add) may hold other suffixes
        path = next((p for p in sorted((dataset_root / "JPEGImages").glob(f"{glob.escape(image_id)}.*"))
                     if p.suffix.lower() in IMAGE_SUFFIXES), path)
    if not path.is_file():
        raise DataError(f"{path}: training image of the bank is missing (give the bank's dataset with "
                        f"--dataset-root)")
    return read_image(path)


def outlined(image: np.ndarray, mask: np.ndarray, colour, dim: bool) -> np.ndarray:
    """The image with the mask's outline drawn (2 px) in `colour`; the rest dimmed if `dim`."""
    out = image.astype(np.float32)
    if dim:
        out[~mask] = 0.35 * out[~mask] + 0.65 * 255
    edge = segmentation_boundaries(mask)
    edge[1:] |= edge[:-1]
    edge[:, 1:] |= edge[:, :-1]
    out[edge] = colour
    return out.astype(np.uint8)


def neighbour_patch(dataset_root: Path, found: Provenance, margin: float = 0.25) -> np.ndarray:
    """The training segment redrawn on its image (in the folder of the addition it came from, if any),
    cropped around its bbox with some context."""
    image = training_image(found.source or dataset_root, found.image_id)
    top, left, bottom, right = found.bbox
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[top:bottom, left:right] = found.mask
    pad_y, pad_x = round(margin * (bottom - top)) + 2, round(margin * (right - left)) + 2
    window = (slice(max(top - pad_y, 0), bottom + pad_y), slice(max(left - pad_x, 0), right + pad_x))
    return outlined(image, mask, (255, 255, 0), dim=True)[window]


def retrieval_figure(examples: list[tuple[str, np.ndarray, list[Query]]], dataset_root: Path,
                     class_names: tuple[str, ...], path: str | Path, title: str) -> None:
    """One row per query segment: the image with the segment framed, then its retrieved training segments,
    each framed in its label's colour and captioned with label and cosine similarity."""
    rows = [(name, image, q) for name, image, queries in examples for q in queries]
    if not rows:
        raise DataError(f"{path}: nothing to explain")
    columns = 1 + max(len(q.neighbours) for _, _, q in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.9 * columns, 1.9 * len(rows)), squeeze=False)
    for axes_row, (name, image, query) in zip(axes, rows):
        colour = PALETTE[query.label]
        axes_row[0].imshow(outlined(image, query.mask, colour, dim=True))
        axes_row[0].set_title(f"{name}: {class_names[query.label]}\n"
                              f"votes {int(query.votes[query.label])}/{int(query.votes.sum())}", fontsize=7)
        for ax, found, sim in zip(axes_row[1:], query.neighbours, query.similarities):
            ax.imshow(neighbour_patch(dataset_root, found))
            ax.set_title(f"{class_names[found.label]} {sim:.2f}\n{found.image_id}", fontsize=7)
            for spine in ax.spines.values():
                spine.set_edgecolor(PALETTE[found.label] / 255)
                spine.set_linewidth(3)
        for ax in axes_row:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes_row[1 + len(query.neighbours):]:
            ax.axis("off")
    used = sorted({q.label for _, _, q in rows} | {f.label for _, _, q in rows for f in q.neighbours})
    fig.legend(handles=[Patch(color=PALETTE[c] / 255, label=class_names[c]) for c in used],
               loc="lower center", ncol=min(len(used), 6), fontsize=8, frameon=False)
    legend_height = 0.25 * math.ceil(len(used) / 6) / fig.get_figheight()  # 0.25 inch per legend line
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, legend_height, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)
