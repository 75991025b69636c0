"""Figures of the paper as PNG files (matplotlib, no screen needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
import numpy as np  # noqa: E402

from segsort.boundaries import segmentation_boundaries  # noqa: E402


def mean_colour_segments(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Each segment painted with its mean colour, its borders in black: how the pseudo-segments split the image."""
    flat = segments.ravel().astype(np.int64)
    counts = np.bincount(flat)
    means = np.stack([np.bincount(flat, weights=image[..., c].ravel()) for c in range(3)], axis=1)
    means /= np.maximum(counts, 1)[:, None]
    out = means[flat].reshape(image.shape).astype(np.uint8)
    out[segmentation_boundaries(segments)] = 0
    return out


def pseudo_segments_figure(rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: str | Path) -> None:
    """Figure 6: for each (title, image, HED contours, pseudo-segments) a row: image | contours | segments."""
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 2.6 * len(rows)), squeeze=False)
    for r, (title, image, contours, segments) in enumerate(rows):
        panels = [(image, None, title),
                  (1.0 - contours, "gray", "HED contours"),
                  (mean_colour_segments(image, segments), None, f"{segments.max() + 1} pseudo-segments")]
        for ax, (picture, cmap, label) in zip(axes[r], panels):
            ax.imshow(picture, cmap=cmap, vmin=0, vmax=1 if cmap else None)
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.suptitle("HED-owt-ucm pseudo-segments (Figure 6)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sweep_figure(curve, x: str, series: str, path: str | Path, xlabel: str, series_label: str, title: str,
                 log_x: bool = False) -> None:
    """mIoU against a swept parameter, one line per value of `series` (Figures 11-13)."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for value, group in curve.groupby(series):
        ax.plot(group[x], group["mIoU"], marker="o", label=f"{value} {series_label}")
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mIoU (%)")
    ax.set_xticks(sorted(curve[x].unique()), [str(v) for v in sorted(curve[x].unique())])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
