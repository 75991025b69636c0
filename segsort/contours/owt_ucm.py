"""HED-owt-ucm pseudo-segments with higra: contours -> orientation -> oriented watershed -> UCM -> cut.

The recipe of the SegSort authors (IMPLEMENTATION_NOTES.md, "HED-owt-ucm pseudo-segments"), without the
optional spectral term:

1. orientation O of the contour map E from second derivatives of a triangle-smoothed E (the
   structured-edge toolbox formula);
2. oriented watershed transform: watershed of E on the 4-adjacency graph (edge weight = mean of the two
   pixels), each watershed arc split into straight segments whose edges are re-weighted by |cos| of the
   angle between O and the segment normal;
3. ultrametric contour map: average linkage over the mean boundary strength of the arcs.
   Steps 2-3 are `hg.mean_pb_hierarchy(graph, E, edge_orientations=O)` rebuilt from higra's public pieces,
   to fix its handling of one-edge segments (see `_oriented_weights`); with `oriented=False` the result
   equals higra's function without orientations;
4. the UCM is stored on the Khalimsky grid ("ucm2", (2H+1, 2W+1), pixel (i, j) at (2i+1, 2j+1), the
   boundary between two neighbours between them; higra continues the boundaries that touch the image
   border onto the outer frame), quantised to 1/65535, so a new cut needs neither HED nor the watershed
   again. The stage cuts the hierarchy on the watershed regions directly (same quantised altitudes,
   hence the same segments as a cut of the stored UCM, which the tests check), which is much cheaper
   than rebuilding it on all pixels.

Cut semantics: two pixels are in the same region when the UCM value separating them is <= threshold.
(higra's docstring of `labelisation_horizontal_cut_from_threshold` says "strictly greater"; the function
actually merges at altitudes <= threshold, which is what the tests check.)
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import higra as hg
import numpy as np
from PIL import Image

from segsort.contours.maps import contour_orientation, load_contours, thin_contours
from segsort.io import DataError, atomic_file

MAX_SEGMENTS = 255  # segment ids are uint8 and 255 means "no segment" downstream


def _edge_orientations(graph, orientation: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Orientation of the given 4-adjacency edges: circular mean (period pi) of their two pixels'."""
    sources, targets = graph.edge_list()
    o = orientation.ravel()
    a, b = 2 * o[sources[edges]], 2 * o[targets[edges]]
    return np.mod(0.5 * np.arctan2(np.sin(a) + np.sin(b), np.cos(a) + np.cos(b)), np.pi)


def _oriented_weights(graph, shape, weights: np.ndarray, orientation: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """OWT re-weighting of the watershed-cut edges (Arbelaez et al., TPAMI 2011).

    The cut is split into straight segments (higra's contour fitting, Ramer-Douglas-Peucker); an edge gets
    weight * |cos(angle between its contour normal and the segment's normal)|, the largest over the segments
    it belongs to. Edges off the cut get 0 (they never reach the region adjacency graph).

    This is what `hg.mean_pb_hierarchy(..., edge_orientations=...)` does, except for segments of a single
    element: higra gives those the angle 0 (their two ends coincide), which zeroes every one-edge piece of a
    vertical boundary; here such a segment takes the direction of its own edge.
    """
    cut = hg.weight_graph(graph, labels, hg.WeightFunction.L0).astype(np.float64)
    contour = hg.fit_contour_2d(graph, shape, cut)
    contour.subdivide()
    elements, seg_angles, degenerate = [], [], []
    for polyline in contour:
        for segment in polyline:
            edges = [element[0] for element in segment]
            elements += edges
            seg_angles += [segment.angle()] * len(edges)
            degenerate += [segment.norm() == 0] * len(edges)
    final = np.zeros_like(weights)
    if not elements:
        return final
    elements = np.asarray(elements, dtype=np.int64)
    seg_angles = np.asarray(seg_angles, dtype=np.float64)
    degenerate = np.asarray(degenerate, dtype=bool)
    sources, targets = graph.edge_list()
    horizontal_edge = targets[elements] == sources[elements] + 1  # neighbours in a row: a vertical boundary piece
    seg_angles[degenerate] = np.where(horizontal_edge[degenerate], np.pi / 2, 0.0)
    factors = np.abs(np.cos(_edge_orientations(graph, orientation, elements) - np.pi / 2 - seg_angles))
    np.maximum.at(final, elements, weights[elements] * factors)
    return final


@dataclass
class Hierarchy:
    """A hierarchy of regions: a binary tree whose leaves are `leaf_of_pixel`'s values, and its merge altitudes.

    tree is None when the image is a single region.
    """
    tree: object
    altitudes: np.ndarray | None
    leaf_of_pixel: np.ndarray  # (H, W) int


def owt_ucm(contours: np.ndarray, oriented: bool = True) -> tuple[np.ndarray, Hierarchy]:
    """The stored ucm2 (uint16, see quantize_ucm) of a contour probability map (H, W) in [0, 1], and the
    hierarchy it encodes, on the watershed regions, with the same quantised altitudes: cutting either
    (cut_hierarchy, or cut_ucm of the stored ucm2) gives the same segments, the former without rebuilding
    the hierarchy on all pixels.

    `oriented=False` skips the OWT re-weighting (plain mean boundary strength of the watershed arcs).
    """
    e = np.asarray(contours, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"contour map must be 2-D, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("contour map has NaN or infinite values")
    e = np.clip(e, 0.0, 1.0)
    flat = (np.zeros((2 * e.shape[0] + 1, 2 * e.shape[1] + 1), dtype=np.uint16),
            Hierarchy(None, None, np.zeros(e.shape, dtype=np.int64)))
    graph = hg.get_4_adjacency_graph(e.shape)
    if graph.num_edges() == 0:
        return flat
    sources, targets = graph.edge_list()
    weights = 0.5 * (e.ravel()[sources] + e.ravel()[targets])  # contour strength between two pixels
    labels = hg.labelisation_watershed(graph, weights)
    if labels.min() == labels.max():  # a single basin (flat map): one region, no contour
        return flat
    rag = hg.make_region_adjacency_graph_from_labelisation(graph, labels)
    if oriented:
        weights = _oriented_weights(graph, e.shape, weights, contour_orientation(e), labels)
    arc_strength = hg.rag_accumulate_on_edges(rag, hg.Accumulators.mean, weights)
    arc_length = hg.rag_accumulate_on_edges(rag, hg.Accumulators.counter, weights)
    tree, altitudes = hg.binary_partition_tree_average_linkage(rag, arc_strength, arc_length)
    altitudes = dequantize_ucm(quantize_ucm(altitudes))
    saliency = hg.saliency(tree, altitudes)  # ultrametric distance on the pixel graph's edges, 0 inside regions
    ucm2 = hg.graph_4_adjacency_2_khalimsky(graph, saliency, shape=e.shape, add_extra_border=True)
    leaf_of_pixel = hg.CptRegionAdjacencyGraph.get_vertex_map(rag).reshape(e.shape)
    return quantize_ucm(ucm2), Hierarchy(tree, altitudes, leaf_of_pixel)


def ucm_from_contours(contours: np.ndarray, oriented: bool = True) -> np.ndarray:
    """Ultrametric contour map of a contour probability map (H, W) in [0, 1], as stored (quantised to 1/65535).

    Returns float64 (2H+1, 2W+1) values in [0, 1] (Khalimsky layout, the BSDS "ucm2"); 0 inside regions.
    """
    return dequantize_ucm(owt_ucm(contours, oriented)[0])


def _pixel_hierarchy(ucm2: np.ndarray) -> Hierarchy:
    """Rebuild the hierarchy stored as a ucm2: the canonical binary partition tree of the 4-adjacency graph
    weighted by the UCM, one leaf per pixel."""
    ucm2 = np.asarray(ucm2, dtype=np.float64)
    if ucm2.ndim != 2 or ucm2.shape[0] % 2 == 0 or ucm2.shape[1] % 2 == 0 or min(ucm2.shape) < 3:
        raise ValueError(f"ucm2 must be (2H+1, 2W+1), got shape {ucm2.shape}")
    graph, weights = hg.khalimsky_2_graph_4_adjacency(ucm2, extra_border=True)
    shape = (ucm2.shape[0] // 2, ucm2.shape[1] // 2)
    pixels = np.arange(shape[0] * shape[1]).reshape(shape)
    if graph.num_edges() == 0:
        return Hierarchy(None, None, pixels)
    tree, altitudes = hg.bpt_canonical(graph, weights)
    return Hierarchy(tree, altitudes, pixels)


def _threshold_for_at_most(merge_altitudes: np.ndarray, start: float, step: float, max_regions: int) -> float:
    """Smallest start + k * step (k >= 0) whose cut has at most max_regions regions.

    With a binary hierarchy, a cut at t has 1 + #(merge altitudes > t) regions.
    """
    descending = np.sort(merge_altitudes)[::-1]
    if len(descending) < max_regions:
        return start
    needed = descending[max_regions - 1]  # t must be >= the max_regions-th highest merge altitude
    k = max(0, int(np.ceil((needed - start) / step)))
    while start + k * step < needed:  # floating point: ceil can fall one short
        k += 1
    while k > 0 and start + (k - 1) * step >= needed:
        k -= 1
    return start + k * step


def cut_ucm(ucm2: np.ndarray, rule: str, threshold: float, step: float = 0.01,
            max_regions: int = 48) -> np.ndarray:
    """Segment labels (H, W) uint8 from a ucm2 alone: cut_hierarchy of the hierarchy it stores."""
    return cut_hierarchy(_pixel_hierarchy(ucm2), rule, threshold, step, max_regions)


def cut_hierarchy(hierarchy: Hierarchy, rule: str, threshold: float, step: float = 0.01,
                  max_regions: int = 48) -> np.ndarray:
    """Segment labels (H, W) uint8, numbered 0, 1, ... in the raster order of their first pixel.

    rule "threshold": neighbours merge where the UCM value between them is <= threshold.
    rule "max_regions": the HSG recipe: start at `threshold` and raise it by `step` until the cut has at
    most `max_regions` regions.
    Either way the result has at most 255 segments (ids 0..254; 255 means "no segment" downstream): a
    threshold cut that would give more is raised, with a warning, to the lowest threshold that gives at
    most 255. A featureless image gives one segment (all zeros).
    """
    if rule not in ("threshold", "max_regions"):
        raise ValueError(f"unknown cut rule {rule!r} (expected 'threshold' or 'max_regions')")
    if rule == "max_regions":
        if not 1 <= max_regions <= MAX_SEGMENTS:
            raise ValueError(f"max_regions must be in 1..{MAX_SEGMENTS}, got {max_regions}")
        if not step > 0:
            raise ValueError(f"threshold_step must be > 0, got {step}")
    tree, altitudes = hierarchy.tree, hierarchy.altitudes
    if tree is None:
        return np.zeros(hierarchy.leaf_of_pixel.shape, dtype=np.uint8)
    merges = altitudes[tree.num_leaves():]
    t = float(threshold)
    if rule == "max_regions":
        t = _threshold_for_at_most(merges, t, step, max_regions)
    elif 1 + np.count_nonzero(merges > t) > MAX_SEGMENTS:
        raised = float(np.sort(merges)[::-1][MAX_SEGMENTS - 1])
        warnings.warn(f"UCM cut at threshold {t:g} gives {1 + np.count_nonzero(merges > t)} segments, more than "
                      f"{MAX_SEGMENTS}; cutting at {raised:g} instead", RuntimeWarning, stacklevel=2)
        t = raised
    expected = 1 + np.count_nonzero(merges > t)
    labels = np.ravel(hg.labelisation_horizontal_cut_from_threshold(tree, altitudes, t))[hierarchy.leaf_of_pixel]
    _, first_pixel, labels = np.unique(labels.ravel(), return_index=True, return_inverse=True)
    rank = np.empty_like(first_pixel)
    rank[np.argsort(first_pixel)] = np.arange(len(first_pixel))
    labels = rank[labels].reshape(hierarchy.leaf_of_pixel.shape)
    if labels.max() + 1 != expected or expected > MAX_SEGMENTS:
        raise RuntimeError(f"UCM cut at {t:g}: {labels.max() + 1} regions, expected {expected} (internal error)")
    return labels.astype(np.uint8)


def quantize_ucm(ucm2: np.ndarray) -> np.ndarray:
    """ucm2 in [0, 1] -> uint16 round(u * 65535), the stored form (cut it through dequantize_ucm)."""
    return np.round(np.clip(np.asarray(ucm2, dtype=np.float64), 0.0, 1.0) * 65535).astype(np.uint16)


def dequantize_ucm(stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float64) / 65535.0


def save_ucm(path: str | Path, ucm2: np.ndarray) -> None:
    """Write a ucm2 as a compressed .npz holding `ucm2` (uint16, value / 65535 in [0, 1]) (not atomic)."""
    stored = ucm2 if ucm2.dtype == np.uint16 else quantize_ucm(ucm2)
    with open(path, "wb") as f:
        np.savez_compressed(f, ucm2=stored)


def load_ucm(path: str | Path) -> np.ndarray:
    """Read a ucm2 written by save_ucm as float64 in [0, 1]; DataError naming the file if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: UCM file is missing")
    try:
        with np.load(path) as data:
            stored = data["ucm2"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read UCM ({err})") from err
    if stored.dtype != np.uint16 or stored.ndim != 2 or stored.shape[0] % 2 == 0 or stored.shape[1] % 2 == 0:
        raise DataError(f"{path}: UCM must be a uint16 (2H+1, 2W+1) array, got {stored.dtype} {stored.shape}")
    return dequantize_ucm(stored)


def segment_contour_file(job: tuple[Path, Path, dict]) -> list[str]:
    """Pseudo-segments of one contour map file: writes OUT/<id>.png and OUT/ucm/<id>.npz atomically.

    job = (contour map path, output folder, the `pseudo_segments` params). Returns the warnings to show
    (a raised cut, a single segment), each naming the file. Runs in worker processes of the stage.
    """
    path, out, cfg = job
    contours = load_contours(path)
    if cfg["thin_contours"]:
        contours = thin_contours(contours)
    stored, hierarchy = owt_ucm(contours)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = cut_hierarchy(hierarchy, cfg["cut"], cfg["threshold"], cfg["threshold_step"], cfg["max_regions"])
    messages = [f"{path}: {warning.message}" for warning in caught]
    if labels.max() == 0:
        messages.append(f"{path}: the cut leaves a single segment (no contour above the threshold)")
    with atomic_file(out / "ucm" / f"{path.stem}.npz") as tmp:
        save_ucm(tmp, stored)
    with atomic_file(out / f"{path.stem}.png") as tmp:
        Image.fromarray(np.ascontiguousarray(labels)).save(tmp)
    return messages
