"""Maps of a model's prototype bank (paper Figures 8-10): its training segments laid out by their prototypes.

Every segment is drawn as a tile: the bbox crop of its training image (bank provenance), the pixels outside
its support faded to white, fitted into a square framed in the colour of its label.

- t-SNE (Figures 9 and 10): a random sample of prototypes reduced to 2-D, each tile placed in the canvas cell
  under its 2-D position unless an earlier one (in the sample's random order) took that cell.
- FINCH (Figure 8): the foreground prototypes clustered hierarchically; random members of clusters at the
  finest level, then a coarse level shown by each cluster's most central members.
"""
from __future__ import annotations

import itertools
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from segsort.bank import Bank, Provenance  # noqa: E402
from segsort.explain import PALETTE, training_image  # noqa: E402
from segsort.io import DataError  # noqa: E402

with warnings.catch_warnings():  # finch warns that pynndescent is missing: it is only used above 20,000 points
    warnings.simplefilter("ignore")
    from finch import FINCH  # noqa: E402

FINCH_TILE_PX = 96  # tile side in the FINCH figure
GAP_PX = 4          # white space between the tiles of a strip


def segment_tile(image: np.ndarray, found: Provenance, size: int) -> np.ndarray:
    """A size x size RGB tile: 1 px of white, a frame in the label's colour, the faded bbox crop centred inside."""
    frame = max(2, size // 16)
    top, left, bottom, right = found.bbox
    crop = image[top:bottom, left:right].astype(np.float32)
    crop[~found.mask] = 0.3 * crop[~found.mask] + 0.7 * 255
    inner = size - 2 * (frame + 1)
    scale = inner / max(crop.shape[:2])
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    resized = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize((width, height), Image.BILINEAR))
    tile = np.full((size, size, 3), 255, np.uint8)
    tile[1:-1, 1:-1] = PALETTE[found.label]
    tile[frame + 1:-frame - 1, frame + 1:-frame - 1] = 255
    y, x = (size - height) // 2, (size - width) // 2
    tile[y:y + height, x:x + width] = resized
    return tile


def segment_tiles(bank: Bank, indices, dataset_root: Path, size: int) -> dict[int, np.ndarray]:
    """The tile of each given bank row, reading each training image once and holding one at a time."""
    found = sorted(bank.provenance(sorted(set(map(int, indices)))), key=lambda p: p.image_id)
    tiles = {}
    for image_id, group in itertools.groupby(found, key=lambda p: p.image_id):
        image = training_image(dataset_root, image_id)
        tiles.update((p.index, segment_tile(image, p, size)) for p in group)
    return tiles


def class_legend(fig, labels, class_names: tuple[str, ...], columns: int, fontsize: float,
                 loc: str = "lower center") -> None:
    """The legend of the classes `labels` use; none for the unlabelled bank of an images-only dataset."""
    if not class_names:
        return
    used = sorted(set(int(label) for label in labels))
    fig.legend(handles=[Patch(facecolor=PALETTE[c] / 255, edgecolor="grey", label=class_names[c]) for c in used],
               loc=loc, ncol=min(len(used), columns), fontsize=fontsize, frameon=False)


# ---------------------------------------------------------------- t-SNE (Figures 9 and 10)

@dataclass
class TsneLayout:
    sampled: int         # prototypes reduced by t-SNE
    indices: np.ndarray  # (P,) bank rows whose tile was placed, in placing order
    cells: np.ndarray    # (P, 2) their (row, column) on the canvas grid, all distinct


def tsne_layout(bank: Bank, samples: int, perplexity: float, cells_per_side: int, seed: int) -> TsneLayout:
    """Sample up to `samples` prototypes, reduce them to 2-D (t-SNE, cosine) and give each the grid cell under
    its position, first come first served in the sample's random order."""
    rows = np.random.default_rng(seed).permutation(len(bank))[:samples]
    if len(rows) <= perplexity:
        raise DataError(f"{bank.path}: {len(rows)} prototypes are too few for t-SNE of perplexity {perplexity}")
    # One thread: the map then does not depend on the thread count, and on a busy machine OpenMP's waiting
    # threads made a 1,000-point t-SNE 4 to 8 times slower with 2 threads than with 1.
    with threadpool_limits(1):
        points = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca",
                      random_state=seed).fit_transform(bank.prototypes[rows].numpy())
    low, high = points.min(axis=0), points.max(axis=0)
    cells = np.clip(((points - low) / np.maximum(high - low, 1e-12) * cells_per_side).astype(int),
                    0, cells_per_side - 1)
    cells[:, 0] = cells_per_side - 1 - cells[:, 0]  # t-SNE's y axis points up, the canvas rows go down
    cells = cells[:, ::-1]                          # (x, y) -> (row, column)
    taken, placed = set(), []
    for i, cell in enumerate(map(tuple, cells)):
        if cell not in taken:
            taken.add(cell)
            placed.append(i)
    return TsneLayout(len(rows), rows[placed], cells[placed])


def tsne_canvas(layout: TsneLayout, bank: Bank, dataset_root: Path, canvas_px: int, patch_px: int) -> np.ndarray:
    """The (canvas_px, canvas_px, 3) canvas with each placed tile in its cell, the grid centred."""
    canvas = np.full((canvas_px, canvas_px, 3), 255, np.uint8)
    margin = (canvas_px - canvas_px // patch_px * patch_px) // 2
    tiles = segment_tiles(bank, layout.indices, dataset_root, patch_px)
    for index, (row, column) in zip(layout.indices, layout.cells):
        y, x = margin + row * patch_px, margin + column * patch_px
        canvas[y:y + patch_px, x:x + patch_px] = tiles[int(index)]
    return canvas


def tsne_figure(canvas: np.ndarray, labels, class_names: tuple[str, ...], path: str | Path, title: str) -> None:
    """The canvas pixel for pixel, a title above and the legend of the shown classes below."""
    lines = textwrap.wrap(title, width=max(20, canvas.shape[1] // 11))  # at most 11 pixels a character at 15 pt
    dpi, top_px, legend_rows = 100, 50 + 22 * (len(lines) - 1), -(-len(set(labels)) // 10) if class_names else 0
    bottom_px = 15 + 30 * legend_rows
    height, width = canvas.shape[0] + top_px + bottom_px, canvas.shape[1]
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    fig.figimage(canvas, xo=0, yo=bottom_px)
    fig.text(0.5, 1 - top_px / 2 / height, "\n".join(lines), ha="center", va="center", fontsize=15)
    class_legend(fig, labels, class_names, columns=10, fontsize=14)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


# ---------------------------------------------------------------- FINCH (Figure 8)

@dataclass
class FinchClusters:
    rows: np.ndarray         # (N,) bank rows of the foreground prototypes clustered
    counts: list[int]        # clusters per level of the hierarchy, finest first
    finest: np.ndarray       # (N,) cluster of each prototype at the finest level
    coarse: np.ndarray       # (N,) cluster of each prototype in the coarse partition shown
    coarse_origin: str       # where the coarse partition comes from


def finch_clusters(bank: Bank, coarse_clusters: int, labelled: bool = True) -> FinchClusters:
    """FINCH (cosine) on the foreground prototypes (on all of them for an unlabelled bank), and the partition
    into `coarse_clusters` clusters.

    When no level of the hierarchy has exactly `coarse_clusters` clusters (the paper's 16 was its third
    level), FINCH's req_clust makes them: it goes on from the nearest finer level merging the closest pair
    of clusters one at a time. The result stays nested in the hierarchy and always fills the figure's table,
    whereas the nearest level could be far off (levels shrink by factors of 3 to 5). A bank whose finest
    level already has fewer clusters shows that level.
    """
    rows = np.nonzero(bank.labels.numpy() != 0)[0] if labelled else np.arange(len(bank))
    if len(rows) < 2:
        raise DataError(f"{bank.path}: the bank has {len(rows)} {'foreground ' if labelled else ''}prototypes"
                        f"{' (label != 0)' if labelled else ''}; FINCH needs at least 2")
    features = bank.prototypes[rows].numpy()
    wanted = min(coarse_clusters, len(rows))
    partitions, counts, requested = FINCH(features, req_clust=wanted, distance="cosine")
    counts = [int(c) for c in counts]
    if wanted in counts:
        origin = f"level {counts.index(wanted) + 1} of the hierarchy"
    elif wanted > counts[0]:
        origin = "the finest level (it has fewer clusters than asked for)"
    else:
        finer = min(c for c in counts if c > wanted)
        origin = f"merged from the level of {finer} clusters (FINCH req_clust)"
    return FinchClusters(rows, counts, partitions[:, 0], np.asarray(requested), origin)


def central_members(features: np.ndarray, members: np.ndarray, count: int) -> np.ndarray:
    """The `count` members whose prototypes are nearest (cosine) to the cluster's mean direction."""
    mean = features[members].mean(axis=0)
    similarity = features[members] @ (mean / np.linalg.norm(mean))
    return members[np.argsort(-similarity, kind="stable")[:count]]


def strip(tiles: list[np.ndarray], slots: int) -> np.ndarray:
    """Tiles side by side with white gaps, padded with white to `slots` tiles."""
    size = FINCH_TILE_PX
    out = np.full((size, slots * size + (slots - 1) * GAP_PX, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        out[:, i * (size + GAP_PX):i * (size + GAP_PX) + size] = tile
    return out


def cluster_caption(labels: np.ndarray, class_names: tuple[str, ...]) -> str:
    """A cluster's majority class and its share; nothing without classes."""
    if not class_names:
        return ""
    counts = np.bincount(labels)
    top = int(counts.argmax())
    return f"{class_names[top]} {counts[top]}/{len(labels)}"


def finch_figure(clusters: FinchClusters, bank: Bank, dataset_root: Path, cfg: dict, seed: int,
                 class_names: tuple[str, ...], path: str | Path, title: str) -> None:
    """Top: `fine_samples` random members of `fine_clusters_shown` random finest-level clusters (those with
    at least `fine_samples` members when there are enough of them). Bottom: the coarse partition, largest
    cluster first, each by its `coarse_samples` most central members, captioned with its majority class."""
    rng = np.random.default_rng(seed)
    features = bank.prototypes[clusters.rows].numpy()
    labels = bank.labels[clusters.rows].numpy()
    sizes = np.bincount(clusters.finest)
    eligible = np.nonzero(sizes >= cfg["fine_samples"])[0]
    if len(eligible) < cfg["fine_clusters_shown"]:
        eligible = np.argsort(-sizes, kind="stable")[:cfg["fine_clusters_shown"]]
    fine = [np.nonzero(clusters.finest == c)[0]
            for c in np.sort(rng.choice(eligible, min(len(eligible), cfg["fine_clusters_shown"]), replace=False))]
    fine_shown = [np.sort(rng.choice(members, min(len(members), cfg["fine_samples"]), replace=False))
                  for members in fine]
    coarse = [np.nonzero(clusters.coarse == c)[0]
              for c in np.argsort(-np.bincount(clusters.coarse), kind="stable")]
    coarse_shown = [central_members(features, members, cfg["coarse_samples"]) for members in coarse]
    tiles = segment_tiles(bank, clusters.rows[np.concatenate(fine_shown + coarse_shown)], dataset_root,
                          FINCH_TILE_PX)

    def draw(ax, members, shown, slots):
        ax.imshow(strip([tiles[int(clusters.rows[m])] for m in shown], slots))
        caption = cluster_caption(labels[members], class_names)
        ax.set_title(f"{len(members)} segments" + (f", {caption}" if caption else ""), fontsize=9)
        ax.axis("off")

    per_row = max(1, cfg["fine_samples"] // cfg["coarse_samples"])
    coarse_rows = -(-len(coarse) // per_row)
    width = 0.3 + 1.05 * max(cfg["fine_samples"], per_row * cfg["coarse_samples"])
    fig = plt.figure(figsize=(width, 1.5 * (len(fine) + coarse_rows) + 1.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[len(fine), coarse_rows])
    top.suptitle(f"finest level ({clusters.counts[0]} clusters): random members of {len(fine)} clusters",
                 fontsize=11)
    for ax, members, shown in zip(np.atleast_1d(top.subplots(len(fine), 1)), fine, fine_shown):
        draw(ax, members, shown, cfg["fine_samples"])
    bottom.suptitle(f"{len(coarse)} clusters, {clusters.coarse_origin}: "
                    f"the {cfg['coarse_samples']} segments nearest each cluster's mean", fontsize=11)
    axes = np.atleast_1d(bottom.subplots(coarse_rows, per_row)).ravel()
    for ax, members, shown in zip(axes, coarse, coarse_shown):
        draw(ax, members, shown, cfg["coarse_samples"])
    for ax in axes[len(coarse):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    class_legend(fig, labels, class_names, columns=8, fontsize=9, loc="outside lower center")
    fig.savefig(path, dpi=100)
    plt.close(fig)
