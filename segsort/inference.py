"""Inference (paper Sec. 3.3): segment an image, describe each segment by a prototype, label it by kNN.

One view of an image (a scale, maybe mirrored) is segmented by spherical k-means on its embedding;
each segment's prototype retrieves its k most cosine-similar prototypes of the labelled bank, and the
neighbours' labels are the segment's votes, painted on its pixels. Multi-scale inference accumulates
the painted votes of every view per pixel; each pixel takes the class with most votes.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from segsort.clustering import cluster_means, cluster_pixels, location_features, segment_means
from segsort.io import IGNORE_LABEL


@dataclass(frozen=True)
class InferenceConfig:
    """How test images are segmented and labelled (the `inference` section of a preset)."""
    grid: tuple[int, int]          # k-means initialisation blocks (rows, cols), as in training
    kmeans_iterations: int
    knn_k: int
    scales: tuple[float, ...] = (1.0,)
    flip: bool = False             # also label the mirrored image of every scale
    max_side: int | None = None    # a larger image is labelled at this longest side, its labels resized back
    grid_blocks: str = "fixed_size"  # how the grid is cut into blocks (segsort.clustering.grid_assignment)

    @classmethod
    def from_params(cls, params: dict) -> "InferenceConfig":
        section = params["inference"]
        return cls(grid=tuple(params["segsort"]["grid"]), kmeans_iterations=section["kmeans_iterations"],
                   knn_k=section["knn_k"], scales=tuple(section["scales"]), flip=section["flip"],
                   max_side=section["max_side"], grid_blocks=params["segsort"]["grid_blocks"])


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def pixel_features(model, image: np.ndarray, features: str) -> torch.Tensor:
    """Unit features (D, H, W) at full image resolution, on the model's device.

    features "embedding": the SegSort embedding; "backbone": the ImageNet backbone features (Table 3, row 1).
    Stride-s maps are upsampled bilinearly and re-normalised.
    """
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().to(model_device(model))
    with torch.inference_mode():
        maps = model(x) if features == "embedding" else model.backbone_features(x)
        maps = F.interpolate(maps, size=image.shape[:2], mode="bilinear", align_corners=False)
        return F.normalize(maps[0], dim=0)


def class_scores(model, image: np.ndarray) -> torch.Tensor:
    """A softmax-head model's class scores (C, H, W), upsampled bilinearly to the image."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().to(model_device(model))
    with torch.inference_mode():
        return F.interpolate(model(x), size=image.shape[:2], mode="bilinear", align_corners=False)[0]


def segment_image(features: torch.Tensor, grid: tuple[int, int], iterations: int,
                  pseudo_segments: np.ndarray | None = None, labels: np.ndarray | None = None,
                  grid_blocks: str = "fixed_size", locations: str = "size") -> torch.Tensor:
    """(H, W) segment ids below segment_count(grid, pseudo_segments): spherical k-means with location
    features (ids of the grid's blocks; a block may end empty), or the given pseudo-segments numbered 0..n-1.

    labels (H, W), for a labelled image of the bank: its void pixels (255) are left out of k-means and get
    segment id -1, as in training (the authors' release drops them before k-means too).
    grid_blocks, locations: how the grid is cut (clustering.grid_assignment) and the location features'
    scale (clustering.location_features: the release's bank divides by H - 1, "last_pixel").
    """
    if pseudo_segments is not None:
        numbered = np.unique(pseudo_segments, return_inverse=True)[1].reshape(pseudo_segments.shape)
        return torch.from_numpy(numbered.astype(np.int64)).to(features.device)
    height, width = features.shape[1:]
    if labels is None:
        valid = torch.ones(height, width, dtype=torch.bool, device=features.device)
    else:
        valid = torch.from_numpy(labels != IGNORE_LABEL).to(features.device)
    coordinates = location_features(height, width, features.device, locations)
    return cluster_pixels(features[None], valid[None], coordinates[None], tuple(grid), iterations,
                          grid_blocks=grid_blocks)[0]


def segment_count(grid: tuple[int, int], pseudo_segments: np.ndarray | None = None) -> int:
    """How many segment ids segment_image can give: the grid's blocks, or the distinct pseudo-segments."""
    return grid[0] * grid[1] if pseudo_segments is None else len(np.unique(pseudo_segments))


def query_prototypes(features: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(S, D): the mean direction of every segment's features (Eq. 6), zero for an empty segment."""
    flat = features.reshape(1, features.shape[0], -1).transpose(1, 2)             # (1, H*W, D)
    ids = segments.reshape(1, -1)
    return cluster_means(flat, ids.clamp(min=0), (ids >= 0).to(flat.dtype), num_segments)[0][0]


@dataclass
class LabelledSegments:
    """A labelled image's segments as they enter the bank (see labelled_prototypes), as host arrays."""
    segment_ids: np.ndarray   # (S',) ids in the image's segmentation
    labels: np.ndarray        # (S',) majority ground-truth class
    pixel_counts: np.ndarray  # (S',) pixels carrying that class: the prototype's support
    prototypes: np.ndarray    # (S', D)
    support: np.ndarray       # (H, W) the segment id of the pixels each prototype averages, -1 elsewhere


def labelled_prototypes(features: torch.Tensor, segments: torch.Tensor, labels: np.ndarray, num_classes: int,
                        num_segments: int) -> LabelledSegments:
    """Prototypes of a labelled image for the kNN bank.

    Each segment takes its majority ground-truth label (ties to the lower class id) and its prototype
    is the mean over the pixels carrying that label only, ignoring the unresolved rest (Sec. 3.3).
    Segments without any labelled pixel are dropped; pixels of segment id -1 (void) belong to none.
    num_segments: how many ids `segments` can hold (segment_count), known on the host, so the device
    works on fixed sizes without a host sync; the table then comes to the host (one transfer per array,
    after the first the device has nothing left to do), which drops the segments without a label.
    """
    seg = segments.reshape(-1)                                                        # (N,)
    lab = torch.from_numpy(labels.astype(np.int64)).to(seg.device).reshape(-1)       # (N,)
    valid = (lab != IGNORE_LABEL) & (seg >= 0)
    spare = num_segments * num_classes                                                # the key of every void pixel
    keys = torch.where(valid, seg * num_classes + lab, spare)                        # (N,) dense (segment, class)
    counts = torch.zeros(spare + 1, dtype=torch.long, device=seg.device).index_add_(0, keys, torch.ones_like(keys))
    counts = counts[:spare].reshape(num_segments, num_classes)                        # (S, C) labelled pixels
    majority = counts.argmax(dim=1)                                                   # (S,) ties: lower class
    support = torch.where(valid & (lab == majority[seg.clamp(min=0)]), seg, -1)      # (N,)
    prototypes = segment_means(features.reshape(features.shape[0], -1).T, support, num_segments)  # (S, D)
    counts, majority, prototypes, support = (t.cpu().numpy() for t in (counts, majority, prototypes, support))
    keep = np.flatnonzero(counts.sum(axis=1) > 0)
    return LabelledSegments(keep, majority[keep], counts[keep, majority[keep]], prototypes[keep],
                            support.reshape(segments.shape))


def nearest_prototypes(queries: torch.Tensor, bank_prototypes: torch.Tensor, k: int,
                       chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact cosine top-k: (similarities (Q, k), bank indices (Q, k)), most similar first.

    The bank is scanned in chunks (moved to the queries' device one at a time), so neither the bank nor
    its similarity matrix has to fit in device memory at once. Equal similarities keep the lower index,
    on every device: a stable sort, not `topk` (whose order among equal values is unspecified).
    """
    k = min(k, len(bank_prototypes))
    best_sims = queries.new_full((len(queries), 0), float("-inf"))
    best_idx = torch.zeros((len(queries), 0), dtype=torch.long, device=queries.device)
    for start in range(0, len(bank_prototypes), chunk):
        sims = queries @ bank_prototypes[start:start + chunk].to(queries.device).T
        # The earlier best (lower indices) first, then this chunk: a stable sort keeps that order among ties.
        merged_sims = torch.cat([best_sims, sims], dim=1)
        merged_idx = torch.cat([best_idx, torch.arange(start, start + sims.shape[1], device=sims.device)
                                .expand(len(sims), -1)], dim=1)
        best_sims, order = merged_sims.sort(dim=1, descending=True, stable=True)
        best_sims, best_idx = best_sims[:, :k], merged_idx.gather(1, order[:, :k])
    return best_sims, best_idx


def knn_votes(neighbour_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(Q, C) vote counts from the labels (Q, k) of each query's neighbours."""
    return (neighbour_labels[..., None] == torch.arange(num_classes, device=neighbour_labels.device)).sum(dim=1)


def majority(votes: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The class with most votes; ties go to the lower class id (arg max returns the first maximum)."""
    return votes.argmax(dim=dim)


def resized_view(image: np.ndarray, scale: float, flip: bool) -> np.ndarray:
    view = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
        interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(view[:, ::-1]) if flip else view


def view_votes(model, image: np.ndarray, bank_prototypes: torch.Tensor, bank_labels: torch.Tensor,
               config: InferenceConfig, num_classes: int, features: str = "embedding",
               pseudo_segments: np.ndarray | None = None):
    """Segment one view, retrieve each segment's neighbours, return (segments (H, W), per-segment votes
    (S, C), neighbour similarities (S, k), neighbour indices (S, k))."""
    segments, queries = segment_queries(pixel_features(model, image, features), config, pseudo_segments)
    return segments, *query_votes(queries, bank_prototypes, bank_labels, config.knn_k, num_classes)


def segment_queries(feature_maps: torch.Tensor, config: InferenceConfig,
                    pseudo_segments: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(segments (H, W), query prototypes (S, D)). S counts every id segment_image can give, empty segments
    too (their rows paint no pixel): no host sync to find the ones in use."""
    segments = segment_image(feature_maps, config.grid, config.kmeans_iterations, pseudo_segments,
                             grid_blocks=config.grid_blocks)
    return segments, query_prototypes(feature_maps, segments, segment_count(config.grid, pseudo_segments))


def query_votes(queries: torch.Tensor, bank_prototypes: torch.Tensor, bank_labels: torch.Tensor, k: int,
                num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(votes (S, C), neighbour similarities (S, k), neighbour indices (S, k)) of each query's k nearest
    bank prototypes."""
    sims, neighbours = nearest_prototypes(queries, bank_prototypes, k)
    return knn_votes(bank_labels.to(neighbours.device)[neighbours], num_classes), sims, neighbours


def segsort_votes(model, image: np.ndarray, bank_prototypes: torch.Tensor, bank_labels: torch.Tensor,
                  config: InferenceConfig, num_classes: int, features: str = "embedding",
                  pseudo_segments: np.ndarray | None = None) -> torch.Tensor:
    """(C, H, W) kNN votes accumulated per pixel over every scale and flip of `config`."""
    return sweep_votes(model, image, bank_prototypes, bank_labels, [config], num_classes, features,
                       pseudo_segments)[0]


def sweep_votes(model, image: np.ndarray, bank_prototypes: torch.Tensor, bank_labels: torch.Tensor,
                configs: list[InferenceConfig], num_classes: int, features: str = "embedding",
                pseudo_segments: np.ndarray | None = None) -> list[torch.Tensor]:
    """segsort_votes of each config, which may differ in k-means iterations and k of kNN but share the
    first's scales and flip: the network runs once per view for all of them (the inference sweep)."""
    height, width = image.shape[:2]
    totals = [torch.zeros(num_classes, height, width, device=model_device(model)) for _ in configs]
    for scale in configs[0].scales:
        for flip in (False, True) if configs[0].flip else (False,):
            view = resized_view(image, scale, flip)
            view_segments = None if pseudo_segments is None else cv2.resize(
                resized_view(pseudo_segments, 1.0, flip), view.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            feature_maps = pixel_features(model, view, features)
            segmented = {}  # settings of the same k-means share its segments
            for config, total in zip(configs, totals):
                key = (config.grid, config.kmeans_iterations)
                if key not in segmented:
                    segmented[key] = segment_queries(feature_maps, config, view_segments)
                segments, queries = segmented[key]
                votes, _, _ = query_votes(queries, bank_prototypes, bank_labels, config.knn_k, num_classes)
                painted = votes.T[:, segments].float()
                if flip:
                    painted = painted.flip(-1)
                if painted.shape[1:] != (height, width):
                    painted = F.interpolate(painted[None], size=(height, width), mode="nearest")[0]
                total += painted
    return totals


def bounded(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """The image shrunk (area interpolation) so that its longest side is at most `max_side`: memory and time
    grow with the pixels, and a 12-megapixel photo needs no more detail than the network's stride gives."""
    if max_side is None or max(image.shape[:2]) <= max_side:
        return image
    factor = max_side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    interpolation = cv2.INTER_NEAREST if image.ndim == 2 else cv2.INTER_AREA  # id maps keep their ids
    return cv2.resize(image, size, interpolation=interpolation)


def full_size(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Labels of a bounded image resized back (nearest) to the image's (H, W)."""
    if labels.shape == tuple(shape[:2]):
        return labels
    return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def segsort_labels(model, image: np.ndarray, bank_prototypes: torch.Tensor, bank_labels: torch.Tensor,
                   config: InferenceConfig, num_classes: int, features: str = "embedding",
                   pseudo_segments: np.ndarray | None = None) -> np.ndarray:
    """(H, W) uint8 class ids of a SegSort model's prediction (at most `config.max_side`, resized back)."""
    return sweep_labels(model, image, bank_prototypes, bank_labels, [config], num_classes, features,
                        pseudo_segments)[0]


def sweep_labels(model, image: np.ndarray, bank_prototypes: torch.Tensor, bank_labels: torch.Tensor,
                 configs: list[InferenceConfig], num_classes: int, features: str = "embedding",
                 pseudo_segments: np.ndarray | None = None) -> list[np.ndarray]:
    """segsort_labels of each config (see sweep_votes)."""
    small = bounded(image, configs[0].max_side)
    segments = None if pseudo_segments is None else bounded(pseudo_segments, configs[0].max_side)
    votes = sweep_votes(model, small, bank_prototypes, bank_labels, configs, num_classes, features, segments)
    return [full_size(majority(v).cpu().numpy().astype(np.uint8), image.shape) for v in votes]


def softmax_labels(model, image: np.ndarray, config: InferenceConfig) -> np.ndarray:
    """(H, W) uint8 class ids of a softmax model: the arg max of its class probabilities, upsampled
    bilinearly and averaged over the same scales and flips as SegSort's votes (at most `config.max_side`,
    resized back)."""
    if config.max_side is not None and max(image.shape[:2]) > config.max_side:
        return full_size(softmax_labels(model, bounded(image, config.max_side), config), image.shape)
    height, width = image.shape[:2]
    total = 0
    for scale in config.scales:
        for flip in (False, True) if config.flip else (False,):
            probabilities = class_scores(model, resized_view(image, scale, flip)).softmax(0)
            if flip:
                probabilities = probabilities.flip(-1)
            total = total + F.interpolate(probabilities[None], size=(height, width), mode="bilinear",
                                          align_corners=False)[0]
    return total.argmax(0).cpu().numpy().astype(np.uint8)
