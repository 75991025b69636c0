"""Pixel sorting (paper Sec. 3.1): spherical k-means with location features, the label partition into
segments, and segment prototypes.

Every function works on a whole batch at once and without host synchronisation (no `.item()`, `unique`,
`nonzero` or boolean indexing), so that a GPU never waits for the CPU: tensor sizes come from the host
(the grid, the number of segments a batch can at most have), never from a tensor's values. The one
exception is asked for by name: compact_segments(capacity=None), for tensors on the CPU.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


GRID_BLOCKS = ("fixed_size", "even")  # params.yaml segsort.grid_blocks
LOCATION_SCALES = ("size", "last_pixel")  # params.yaml inference.bank_locations


def grid_assignment(height: int, width: int, grid: tuple[int, int], device=None,
                    blocks: str = "fixed_size") -> torch.Tensor:
    """Initial segment ids (H*W,) of k-means: the image cut into a grid of blocks, id row * grid[1] + column.

    blocks "fixed_size" (the authors' release): blocks of ceil(H / grid[0]) x ceil(W / grid[1]) pixels, so a
    side can get fewer than grid[0] blocks (H = 9, 4 rows: 3 blocks of 3 rows; ids of the missing blocks are
    never used). "even": pixel row y in block row floor(y * grid[0] / H), always grid[0] x grid[1] blocks.
    """
    if blocks == "fixed_size":
        rows = torch.arange(height, device=device) // -(-height // grid[0])
        cols = torch.arange(width, device=device) // -(-width // grid[1])
    elif blocks == "even":
        rows = torch.arange(height, device=device) * grid[0] // height
        cols = torch.arange(width, device=device) * grid[1] // width
    else:
        raise ValueError(f"grid blocks {blocks!r}: one of {GRID_BLOCKS}")
    return (rows[:, None] * grid[1] + cols[None, :]).reshape(-1)


def location_features(height: int, width: int, device=None, scale: str = "size") -> torch.Tensor:
    """(2, H, W) pixel coordinates (y, x) divided by the image height and width ("size": in [0, 1)), or by
    the last pixel's (H - 1, W - 1: "last_pixel", in [0, 1], as the release's prototype bank does)."""
    if scale not in LOCATION_SCALES:
        raise ValueError(f"location scale {scale!r}: one of {LOCATION_SCALES}")
    last = int(scale == "last_pixel")
    ys = torch.arange(height, device=device, dtype=torch.float32) / max(height - last, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32) / max(width - last, 1)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))


def segment_means(features: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Eq. 6: the mean direction of each segment, sum_i v_i / ||sum_i v_i||. (N, D), (N,) -> (S, D).

    Pixels of segment id -1 belong to none; an empty segment gets the zero vector. A scatter-add, for the
    many segments of a batch (few pixels land on the same row); `cluster_means` serves the few clusters
    of an image.
    """
    rows = torch.where(segment_ids >= 0, segment_ids, num_segments)  # id -1 -> a spare last row, dropped
    sums = features.new_zeros(num_segments + 1, features.shape[1]).index_add_(0, rows, features)
    return F.normalize(sums[:num_segments], dim=1)


def cluster_means(features: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor,
                  num_clusters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6 for a few clusters per image, as a one-hot matrix product (GPU scatter-adds of many pixels
    into few rows serialise on atomics; a batched matrix product does not).

    features (B, N, D), ids (B, N) in 0..K-1, weights (B, N) 1 for the pixels that count, 0 for the others.
    Returns (mean directions (B, K, D), zero for an empty cluster; pixel counts (B, K)).
    """
    # (B, N, K) one-hot by comparison: F.one_hot reads the ids' range back to the host on a CPU
    members = (ids[..., None] == torch.arange(num_clusters, device=ids.device)).to(features.dtype) * weights[..., None]
    return F.normalize(members.transpose(1, 2) @ features, dim=2), members.sum(dim=1)


def spherical_kmeans(features: torch.Tensor, weights: torch.Tensor, init_ids: torch.Tensor,
                     num_clusters: int, iterations: int) -> torch.Tensor:
    """Spherical k-means (Algorithm 1 of the paper) of every image of a batch at once: each iteration is
    an M step (Eq. 6) then an E step (z_i = argmax_s mu_s^T v_i).

    features (B, N, D) unit rows, weights (B, N) 1 for the pixels clustered and 0 for the others (void,
    padding: they take an id but never move a centre), init_ids (B, N) in 0..K-1 -> cluster ids (B, N).
    A fixed number of iterations keeps time and memory predictable (Sec. 3.1). A cluster that became
    empty can never win a pixel again.
    """
    ids = init_ids
    for _ in range(iterations):
        centres, counts = cluster_means(features, ids, weights, num_clusters)           # (B, K, D), (B, K)
        scores = features @ centres.transpose(1, 2)                                     # (B, N, K)
        ids = scores.masked_fill_((counts == 0)[:, None, :], float("-inf")).argmax(dim=2)
    return ids


def cluster_pixels(embeddings: torch.Tensor, valid: torch.Tensor, locations: torch.Tensor,
                   grid: tuple[int, int], iterations: int, init_blocks: torch.Tensor | None = None,
                   grid_blocks: str = "fixed_size") -> torch.Tensor:
    """Cluster the pixels of each image of a batch with its embedding and location features.

    embeddings (B, D, H, W) unit vectors, valid (B, H, W) bool, locations (B, 2, H, W).
    Returns (B, H, W) int64 cluster ids in 0..K-1 (K = grid[0] * grid[1], the initial blocks; some may end
    empty), -1 where not valid: void pixels take no part, they neither start nor move a cluster.
    Location features are concatenated to the embedding and the result re-normalised; they guide
    the clustering only and never enter prototypes.
    init_blocks (B, H, W), ids in 0..K-1: the grid of blocks laid on another frame (a training crop's
    original image, `grid_frame: image`); blocks that fall outside the crop start empty and stay
    empty. By default the grid is laid on these H x W pixels, cut as `grid_blocks` says (grid_assignment).
    """
    batch, _, height, width = embeddings.shape
    with torch.no_grad():
        joint = F.normalize(torch.cat([embeddings, locations.to(embeddings.dtype)], dim=1), dim=1)
        joint = joint.flatten(2).transpose(1, 2)                                        # (B, H*W, D + 2)
        if init_blocks is None:
            init = grid_assignment(height, width, grid, embeddings.device, grid_blocks).expand(batch, -1)
        else:
            init = init_blocks.flatten(1)
        mask = valid.flatten(1)
        ids = spherical_kmeans(joint, mask.to(joint.dtype), init, grid[0] * grid[1], iterations)
    return ids.masked_fill(~mask, -1).reshape(batch, height, width)


def label_partition(cluster_ids: torch.Tensor, labels: torch.Tensor, num_clusters: int,
                    num_classes: int) -> torch.Tensor:
    """Split every cluster by the ground-truth labels (Fig. 3): each (image, cluster, class) is a segment.

    cluster_ids (B, N) in 0..K-1 or -1, labels (B, N). Returns (B, N) dense segment keys
    (b * K + cluster) * C + class, in 0..B*K*C-1, and -1 where the cluster id is.
    """
    image = torch.arange(len(cluster_ids), device=cluster_ids.device)[:, None]
    keys = (image * num_clusters + cluster_ids) * num_classes + labels
    return torch.where(cluster_ids >= 0, keys, -1)


def compact_segments(keys: torch.Tensor, num_keys: int,
                     capacity: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Number the segments that occur 0..S-1, in increasing order of their dense key, in `capacity` rows.

    keys (N,) in 0..num_keys-1, or -1 for a pixel of no segment. capacity: at least S, a bound the host
    knows without looking at the device (e.g. clusters x classes present in the batch's crops), or None
    for exactly S rows: S is then read back to the host, which costs nothing when the tensors live on the
    CPU but is a host sync on a GPU.
    Returns (segment ids (N,), -1 where the key is; the key of each row (capacity,), -1 for the rows
    beyond S).
    """
    rows = torch.where(keys >= 0, keys, num_keys)                                  # -1 -> a spare last key
    present = torch.zeros(num_keys + 1, dtype=torch.bool, device=keys.device).index_fill_(0, rows, True)
    present[num_keys] = False
    if capacity is None:
        capacity = int(present.sum())
    rank = present.cumsum(0) - 1                                                    # segment id of each key
    slots = torch.where(present, rank, capacity)                                   # absent keys -> a spare row
    all_keys = torch.arange(num_keys + 1, device=keys.device)
    row_keys = torch.full((capacity + 1,), -1, dtype=torch.long, device=keys.device).scatter_(0, slots, all_keys)
    return torch.where(keys >= 0, rank[rows], -1), row_keys[:capacity]
