"""Inference (paper Sec. 3.3): segment an image, describe each segment by a prototype, label it by kNN."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from segsort.clustering import cluster_pixels, compact_ids, location_features, segment_means
from segsort.io import IGNORE_LABEL


def pixel_features(model, image: np.ndarray, kind: str) -> torch.Tensor:
    """Unit features (D, H, W) at full image resolution.

    kind "embedding": the SegSort embedding; "backbone": the ImageNet backbone features (Table 3, row 1).
    Stride-8 maps are upsampled bilinearly and re-normalised.
    """
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        features = model(x) if kind == "embedding" else model.backbone_features(x)
        features = F.interpolate(features, size=image.shape[:2], mode="bilinear", align_corners=False)
        return F.normalize(features[0], dim=0)


def class_scores(model, image: np.ndarray) -> torch.Tensor:
    """A softmax-head model's class scores (C, H, W), upsampled bilinearly to the image."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.inference_mode():
        return F.interpolate(model(x), size=image.shape[:2], mode="bilinear", align_corners=False)[0]


def segment_image(features: torch.Tensor, segsort_cfg: dict, pseudo_segments: np.ndarray | None = None):
    """(H, W) segment ids 0..S-1: spherical k-means with location features, or the given pseudo-segments."""
    if pseudo_segments is not None:
        return compact_ids(torch.from_numpy(pseudo_segments.astype(np.int64)))
    height, width = features.shape[1:]
    valid = torch.ones(height, width, dtype=torch.bool)
    return cluster_pixels(features, valid, location_features(height, width), tuple(segsort_cfg["grid"]),
                          segsort_cfg["kmeans_iterations"])


def query_prototypes(features: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """(S, D): the mean direction of every segment's features (Eq. 6)."""
    flat = features.reshape(features.shape[0], -1).T
    return segment_means(flat, segments.reshape(-1), int(segments.max()) + 1)


def labelled_prototypes(features: torch.Tensor, segments: torch.Tensor, labels: np.ndarray, num_classes: int):
    """Prototypes of a labelled image for the kNN bank.

    Each segment takes its majority ground-truth label (ties to the lower class id) and its prototype
    is the mean over the pixels carrying that label only, ignoring the unresolved rest (Sec. 3.3).
    Segments without any labelled pixel are dropped. Returns (segment ids, labels, pixel counts,
    prototypes (S', D)).
    """
    seg = segments.reshape(-1)
    lab = torch.from_numpy(labels.astype(np.int64)).reshape(-1)
    valid = lab != IGNORE_LABEL
    num_segments = int(seg.max()) + 1
    counts = torch.bincount(seg[valid] * num_classes + lab[valid],
                            minlength=num_segments * num_classes).reshape(num_segments, num_classes)
    majority = counts.argmax(dim=1)
    keep = counts.sum(dim=1) > 0
    agrees = valid & (lab == majority[seg])
    flat = features.reshape(features.shape[0], -1).T
    prototypes = segment_means(flat[agrees], seg[agrees], num_segments)
    segment_ids = torch.nonzero(keep).squeeze(1)
    return (segment_ids, majority[keep], counts[keep, majority[keep]], prototypes[keep])


def knn_vote(queries: torch.Tensor, bank_prototypes: torch.Tensor, bank_labels: torch.Tensor, k: int,
             num_classes: int, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Label each query by the majority of its k most cosine-similar bank prototypes (ties to the lower id).

    The bank is scanned in chunks so its similarity matrix never has to fit in memory at once.
    Returns (labels (Q,), indices of the k neighbours (Q, k)).
    """
    k = min(k, len(bank_prototypes))
    best_sims = queries.new_full((len(queries), 0), float("-inf"))
    best_idx = torch.zeros((len(queries), 0), dtype=torch.long)
    for start in range(0, len(bank_prototypes), chunk):
        sims = queries @ bank_prototypes[start:start + chunk].T
        top = sims.topk(min(k, sims.shape[1]), dim=1)
        merged_sims = torch.cat([best_sims, top.values], dim=1)
        merged_idx = torch.cat([best_idx, top.indices + start], dim=1)
        best_sims, order = merged_sims.topk(min(k, merged_sims.shape[1]), dim=1)
        best_idx = merged_idx.gather(1, order)
    votes = F.one_hot(bank_labels[best_idx], num_classes).sum(dim=1)
    return votes.argmax(dim=1), best_idx


def confusion_matrix(prediction: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    valid = labels != IGNORE_LABEL
    index = labels[valid].astype(np.int64) * num_classes + prediction[valid].astype(np.int64)
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray) -> dict:
    """Per-class IoU (None for a class absent from both prediction and truth), mIoU over the others,
    and pixel accuracy, from a (truth x prediction) confusion matrix accumulated over the dataset."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    present = [v for v in iou if v is not None]
    return {"per_class_iou": iou, "miou": float(np.mean(present)) if present else 0.0,
            "pixel_accuracy": float(tp.sum() / max(confusion.sum(), 1))}
