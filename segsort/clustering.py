"""Pixel sorting (paper Sec. 3.1): spherical k-means with location features, and segment prototypes."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def grid_assignment(height: int, width: int, grid: tuple[int, int], device=None) -> torch.Tensor:
    """Initial segment ids (H*W,): the image split uniformly into grid[0] x grid[1] blocks."""
    rows = torch.arange(height, device=device) * grid[0] // height
    cols = torch.arange(width, device=device) * grid[1] // width
    return (rows[:, None] * grid[1] + cols[None, :]).reshape(-1)


def location_features(height: int, width: int, device=None) -> torch.Tensor:
    """(2, H, W) pixel coordinates (y, x) divided by the image height and width, in [0, 1)."""
    ys = torch.arange(height, device=device, dtype=torch.float32) / height
    xs = torch.arange(width, device=device, dtype=torch.float32) / width
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))


def segment_means(features: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Eq. 6: the mean direction of each segment, sum_i v_i / ||sum_i v_i||. (N, D), (N,) -> (S, D).

    An empty segment gets the zero vector.
    """
    sums = features.new_zeros(num_segments, features.shape[1]).index_add_(0, segment_ids, features)
    return F.normalize(sums, dim=1)


def spherical_kmeans(features: torch.Tensor, init_ids: torch.Tensor, num_clusters: int,
                     iterations: int) -> torch.Tensor:
    """Spherical k-means (Algorithm 1 of the paper): each iteration is an M step (Eq. 6) then an E step
    (z_i = argmax_s mu_s^T v_i). features (N, D) unit rows, init_ids (N,) -> cluster ids (N,).

    A fixed number of iterations keeps time and memory predictable (Sec. 3.1). A cluster that became
    empty can never win a pixel again.
    """
    ids, ones = init_ids, torch.ones_like(init_ids)
    for _ in range(iterations):
        centres = segment_means(features, ids, num_clusters)
        scores = features @ centres.T
        # Counted with index_add_ and masked with masked_fill_: bincount and boolean indexing would make
        # the CPU wait for the GPU at every iteration.
        empty = ids.new_zeros(num_clusters).index_add_(0, ids, ones) == 0
        ids = scores.masked_fill_(empty, float("-inf")).argmax(dim=1)
    return ids


def cluster_pixels(embedding: torch.Tensor, valid: torch.Tensor, locations: torch.Tensor,
                   grid: tuple[int, int], iterations: int, init_blocks: torch.Tensor | None = None) -> torch.Tensor:
    """Cluster one image's pixels with its embedding and location features.

    embedding (D, H, W) unit vectors, valid (H, W) bool, locations (2, H, W).
    Returns (H, W) int64 cluster ids numbered 0..n-1 in increasing order of their initial block, -1 where
    not valid (void pixels take no part: they neither start nor move a cluster).
    Location features are concatenated to the embedding and the result re-normalised; they guide
    the clustering only and never enter prototypes.
    init_blocks (H, W), ids in 0..grid[0]*grid[1]-1: the grid of blocks laid on another frame (a training
    crop's original image, `grid_frame: image`); blocks that fall outside the crop start empty and stay
    empty. By default the grid is laid on these H x W pixels.
    """
    height, width = valid.shape
    with torch.no_grad():
        joint = F.normalize(torch.cat([embedding, locations]), dim=0).reshape(embedding.shape[0] + 2, -1).T
        mask = valid.reshape(-1)
        if init_blocks is None:
            init_blocks = grid_assignment(height, width, grid, device=embedding.device)
        init = init_blocks.reshape(-1)[mask]
        ids = spherical_kmeans(joint[mask], init, grid[0] * grid[1], iterations)
    out = torch.full((height * width,), -1, dtype=torch.long, device=embedding.device)
    out[mask] = compact_ids(ids)
    return out.reshape(height, width)


def compact_ids(ids: torch.Tensor) -> torch.Tensor:
    """Renumber arbitrary non-negative ids to 0..n-1, in increasing order of the original id."""
    return torch.unique(ids, return_inverse=True)[1]


def partition_by_labels(cluster_ids: torch.Tensor, labels: torch.Tensor, num_classes: int):
    """Split every cluster by the ground-truth labels (Fig. 3): each (cluster, class) pair is a segment.

    cluster_ids, labels: (N,) for the valid pixels. Returns (segment ids (N,) numbered 0..S-1,
    segment labels (S,)).
    """
    pairs = cluster_ids * num_classes + labels
    unique_pairs, segment_ids = torch.unique(pairs, return_inverse=True)
    return segment_ids, unique_pairs % num_classes
