"""The per-image SegSort core that the batched one replaced, kept as the reference it must equal.

Image by image, with boolean indexing, `unique` and a memory bank of concatenated batches: the plain
reading of the paper (Algorithm 1, Eq. 6, 8 and 10) and of the authors' release, slow on a GPU because
every image and every `unique` makes the host wait. tests/test_batched_core.py runs both on the same
random batches in float64.
"""
from __future__ import annotations

from collections import deque

import torch
from torch.nn import functional as F

from segsort.clustering import grid_assignment
from segsort.io import IGNORE_LABEL


def segment_means(features, segment_ids, num_segments):
    """Eq. 6 for the pixels given: (N, D), (N,) -> (S, D), zero for an empty segment."""
    sums = features.new_zeros(num_segments, features.shape[1]).index_add_(0, segment_ids, features)
    return F.normalize(sums, dim=1)


def spherical_kmeans(features, init_ids, num_clusters, iterations):
    """One image's valid pixels (N, D) from their initial ids (N,); an empty cluster never wins again."""
    ids = init_ids
    for _ in range(iterations):
        centres = segment_means(features, ids, num_clusters)
        empty = torch.bincount(ids, minlength=num_clusters) == 0
        ids = (features @ centres.T).masked_fill(empty, float("-inf")).argmax(dim=1)
    return ids


def compact_ids(ids):
    return torch.unique(ids, return_inverse=True)[1]


def cluster_pixels(embedding, valid, locations, grid, iterations, init_blocks=None):
    """One image: (D, H, W), (H, W), (2, H, W) -> (H, W) ids 0..n-1 in order of initial block, -1 if not valid."""
    height, width = valid.shape
    joint = F.normalize(torch.cat([embedding, locations.to(embedding.dtype)]), dim=0).reshape(-1, height * width).T
    mask = valid.reshape(-1)
    if init_blocks is None:
        init_blocks = grid_assignment(height, width, grid)
    ids = spherical_kmeans(joint[mask], init_blocks.reshape(-1)[mask], grid[0] * grid[1], iterations)
    out = torch.full((height * width,), -1, dtype=torch.long)
    out[mask] = compact_ids(ids)
    return out.reshape(height, width)


def partition_by_labels(cluster_ids, labels, num_classes):
    """Each (cluster, class) pair of the valid pixels (N,) is a segment: (segment ids (N,), labels (S,))."""
    unique_pairs, segment_ids = torch.unique(cluster_ids * num_classes + labels, return_inverse=True)
    return segment_ids, unique_pairs % num_classes


def vmf_loss(embeddings, segment_ids, prototypes, kappa, extra_prototypes=None):
    """Eq. 8 over the pixels given, the bank's prototypes as further negatives."""
    if extra_prototypes is not None:
        prototypes = torch.cat([prototypes, extra_prototypes])
    logits = kappa * embeddings @ prototypes.T
    return (torch.logsumexp(logits, dim=1) - logits.gather(1, segment_ids[:, None]).squeeze(1)).mean()


def vmf_n_loss(embeddings, segment_ids, pixel_labels, prototypes, prototype_labels, kappa,
               bank_prototypes=None, bank_labels=None):
    """Eq. 10 over the pixels given, with the vMF fallback for a pixel without positive."""
    if bank_prototypes is not None:
        prototypes = torch.cat([prototypes, bank_prototypes])
        prototype_labels = torch.cat([prototype_labels, bank_labels])
    logits = kappa * embeddings @ prototypes.T
    own = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, segment_ids[:, None], True)
    positive = (pixel_labels[:, None] == prototype_labels[None, :]) & ~own
    minus_inf = torch.finfo(logits.dtype).min
    vmf_n = (torch.logsumexp(logits.masked_fill(own, minus_inf), dim=1)
             - torch.logsumexp(logits.masked_fill(~positive, minus_inf), dim=1))
    vmf = torch.logsumexp(logits, dim=1) - logits.gather(1, segment_ids[:, None]).squeeze(1)
    return torch.where(positive.any(dim=1), vmf_n, vmf).mean()


class MemoryBank:
    """The last `num_batches` batches' prototypes and labels, concatenated; an empty batch is not pushed."""

    def __init__(self, num_batches):
        self.batches = deque(maxlen=num_batches)

    def push(self, prototypes, labels=None):
        if self.batches.maxlen and len(prototypes):
            self.batches.append((prototypes.detach().clone(), None if labels is None else labels.detach().clone()))

    def prototypes(self):
        return torch.cat([p for p, _ in self.batches]) if self.batches else None

    def labels(self):
        return torch.cat([l for _, l in self.batches]) if self.batches else None


def supervised_loss(embeddings, labels, locations, num_classes, segsort_cfg, bank, blocks=None):
    """Algorithm 1, image by image; None when every pixel is void."""
    grid, iterations = tuple(segsort_cfg["grid"]), segsort_cfg["kmeans_iterations"]
    pixels, segment_ids, pixel_labels, segment_labels, offset = [], [], [], [], 0
    for index, (emb, lab, loc) in enumerate(zip(embeddings, labels, locations)):
        valid = lab != IGNORE_LABEL
        if not valid.any():
            continue
        clusters = cluster_pixels(emb.detach(), valid, loc, grid, iterations, None if blocks is None else blocks[index])
        seg, seg_labels = partition_by_labels(clusters[valid], lab[valid], num_classes)
        pixels.append(emb[:, valid].T)
        segment_ids.append(seg + offset)
        pixel_labels.append(lab[valid])
        segment_labels.append(seg_labels)
        offset += len(seg_labels)
    if not pixels:
        return None
    pixels, segment_ids = torch.cat(pixels), torch.cat(segment_ids)
    prototypes, prototype_labels = segment_means(pixels, segment_ids, offset), torch.cat(segment_labels)
    loss = vmf_n_loss(pixels, segment_ids, torch.cat(pixel_labels), prototypes, prototype_labels,
                      segsort_cfg["kappa"], bank.prototypes(), bank.labels())
    bank.push(prototypes, prototype_labels)
    return loss


def unsupervised_loss(embeddings, segments, segsort_cfg, bank):
    """Eq. 8 on the pseudo-segments, image by image; None when no pixel has one."""
    pixels, segment_ids, offset = [], [], 0
    for emb, seg in zip(embeddings, segments):
        valid = seg != IGNORE_LABEL
        if not valid.any():
            continue
        ids = compact_ids(seg[valid])
        pixels.append(emb[:, valid].T)
        segment_ids.append(ids + offset)
        offset += int(ids.max()) + 1
    if not pixels:
        return None
    pixels, segment_ids = torch.cat(pixels), torch.cat(segment_ids)
    prototypes = segment_means(pixels, segment_ids, offset)
    loss = vmf_loss(pixels, segment_ids, prototypes, segsort_cfg["kappa"], bank.prototypes())
    bank.push(prototypes)
    return loss
