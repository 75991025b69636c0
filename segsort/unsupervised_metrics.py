"""The two evaluation protocols of later unsupervised-segmentation papers (PiCIE, STEGO), beside the
paper's kNN protocol, so that SegSort's unsupervised features can be compared with theirs.

1. Hungarian-matched cluster mIoU: the features of the evaluation split are clustered into as many
   clusters as there are classes, without any label; the labels only decide afterwards which cluster
   stands for which class (the one-to-one assignment that matches the most pixels), so the score
   measures how well the features alone separate the classes.
2. Linear probe: a linear classifier (a 1x1 conv: D -> C plus bias) trained on the FROZEN features of
   the labelled training split, evaluated per pixel. It measures how linearly the classes can be read
   off the features, whatever the clusters look like.

Memory: the full-resolution features of a split are never held at once. Fitting (k-means, the probe)
works on a random sample of labelled pixels per image, about
num_images x pixels_per_image x D x 4 bytes; scoring goes image by image.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from segsort.inference import pixel_features
from segsort.metrics import confusion_matrix, segmentation_scores
from segsort.io import IGNORE_LABEL

# The settings params["evaluation"]["unsupervised_protocols"] must give (see params.yaml for their meaning).
SETTINGS = ("pixels_per_image", "kmeans_iterations", "probe_epochs", "probe_lr", "probe_batch_size")


def protocol_config(cfg: dict | None) -> dict:
    """The protocols' settings, checked: a missing or unknown key is a mistake, not silently defaulted."""
    cfg = dict(cfg or {})
    missing, unknown = sorted(set(SETTINGS) - set(cfg)), sorted(set(cfg) - set(SETTINGS))
    if missing or unknown:
        raise ValueError(f"evaluation.unsupervised_protocols: missing keys {missing}, unknown keys {unknown}")
    return cfg


def sample_labelled_pixels(features: torch.Tensor, labels: np.ndarray, count: int,
                           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `count` labelled pixels of one image, drawn without replacement: (count', D) features and
    (count',) labels, on the CPU whatever device computed the features. Ignore (255) pixels never enter,
    so they can neither pull a centroid nor train the probe. The draw depends on the generator only, so a
    fixed seed gives the same sample."""
    flat_labels = torch.from_numpy(labels.astype(np.int64)).reshape(-1)
    labelled = torch.nonzero(flat_labels != IGNORE_LABEL).squeeze(1)
    chosen = labelled[torch.randperm(len(labelled), generator=generator)[:count]]
    flat = features.reshape(features.shape[0], -1)
    return flat[:, chosen.to(flat.device)].T.cpu(), flat_labels[chosen]


def sample_split(model, dataset, features: str, pixels_per_image: int, seed: int):
    """Sampled unit features (N, D) and labels (N,) of a whole split, one image's forward pass at a time."""
    generator = torch.Generator().manual_seed(seed)
    sampled, labels = [], []
    for index in tqdm(range(len(dataset)), desc=f"sample {dataset.split}", mininterval=5):
        sample = dataset[index]
        f, lab = sample_labelled_pixels(pixel_features(model, sample.image, features), sample.labels,
                                        pixels_per_image, generator)
        sampled.append(f)
        labels.append(lab)
    return torch.cat(sampled), torch.cat(labels)


def kmeans_plus_plus(features: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding on the sphere: each next centre is drawn with probability proportional to the
    squared cosine distance to the nearest centre so far, so the initial centres spread over the data
    instead of landing in the largest class. (K, D) unit rows, deterministic for a given generator."""
    first = torch.randint(len(features), (1,), generator=generator)
    centres = [features[first[0]]]
    distance = (1 - features @ centres[0]).clamp_min(0) ** 2
    for _ in range(1, k):
        if distance.sum() > 0:
            pick = torch.multinomial(distance, 1, generator=generator)[0]
        else:  # fewer distinct directions than clusters: any point will do
            pick = torch.randint(len(features), (1,), generator=generator)[0]
        centres.append(features[pick])
        distance = torch.minimum(distance, (1 - features @ features[pick]).clamp_min(0) ** 2)
    return F.normalize(torch.stack(centres), dim=1)


def fit_spherical_kmeans(features: torch.Tensor, k: int, iterations: int,
                         generator: torch.Generator) -> torch.Tensor:
    """Spherical k-means over the sampled pixels of a whole split: k-means++ seeding, then a fixed number
    of (assign to the most cosine-similar centre, re-centre on the normalised mean) steps. A centre that
    loses all its pixels keeps its position rather than collapsing to zero, so it can win some back.
    features (N, D) unit rows -> centroids (K, D) unit rows."""
    if len(features) < k:
        raise ValueError(f"k-means needs at least {k} sampled pixels, got {len(features)}")
    centres = kmeans_plus_plus(features, k, generator)
    for _ in range(iterations):
        ids = (features @ centres.T).argmax(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, ids, features)
        counts = torch.bincount(ids, minlength=k)
        centres = torch.where((counts > 0)[:, None], F.normalize(sums, dim=1), centres)
    return centres


def assign_clusters(features: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(D, H, W) unit features -> (H, W) id of the most cosine-similar centroid, on the CPU."""
    flat = features.reshape(features.shape[0], -1).T
    return (flat @ centroids.to(flat.device).T).argmax(dim=1).reshape(features.shape[1:]).cpu()


def hungarian_match(confusion: np.ndarray) -> np.ndarray:
    """The one-to-one cluster -> class assignment that maximises the matched pixels.

    confusion (K clusters x C classes) pixel counts. Returns mapping (K,) with mapping[cluster] = class,
    -1 for a cluster left without a class (only when K > C). Clusters are unsupervised, so their ids are
    arbitrary: this is the most favourable reading of them that still uses each class once.
    """
    rows, cols = linear_sum_assignment(np.asarray(confusion), maximize=True)
    mapping = np.full(confusion.shape[0], -1, dtype=np.int64)
    mapping[rows] = cols
    return mapping


def cluster_miou(confusion: np.ndarray) -> dict:
    """Scores of the Hungarian-relabelled clustering.

    confusion (C classes x K clusters), as `metrics.confusion_matrix(cluster ids, labels, K)` accumulates
    it with K = C. Each cluster's column is moved to the class it is matched to, then scored like any
    prediction. Returns segmentation_scores' dict plus "mapping" (list: cluster -> class).
    """
    mapping = hungarian_match(confusion.T)
    relabelled = np.zeros_like(confusion)
    matched = mapping >= 0
    np.add.at(relabelled.T, mapping[matched], confusion.T[matched])
    return {**segmentation_scores(relabelled), "mapping": mapping.tolist()}


def train_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int,
                       lr: float, batch_size: int, seed: int) -> nn.Linear:
    """A D -> C linear classifier (the 1x1 conv of a linear probe) fitted by Adam on frozen features.

    Softmax cross-entropy is convex in the weights, so starting from zero weights loses nothing and makes
    the result depend on `seed` (the mini-batch order) only: the same seed gives the same probe.
    """
    probe = nn.Linear(features.shape[1], num_classes)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    optimiser = torch.optim.Adam(probe.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(features), generator=generator)
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                loss = F.cross_entropy(probe(features[batch]), labels[batch])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    return probe.eval()


def probe_predict(features: torch.Tensor, probe: nn.Linear) -> torch.Tensor:
    """(D, H, W) features -> (H, W) arg max class of the probe, on the CPU."""
    flat = features.reshape(features.shape[0], -1).T
    weight, bias = probe.weight.to(flat.device), probe.bias.to(flat.device)
    with torch.no_grad():
        return F.linear(flat, weight, bias).argmax(dim=1).reshape(features.shape[1:]).cpu()


def evaluate_protocols(model, train_dataset, eval_dataset, features: str, cfg: dict, seed: int) -> dict:
    """Both protocols for one model: fit the probe on sampled pixels of `train_dataset`, k-means on sampled
    pixels of `eval_dataset` (unsupervised, so fitting on the split it scores is the protocol), then score
    both in one pass over `eval_dataset`, one image's features at a time.

    Returns {"cluster": scores + mapping, "probe": scores, "num_images", "num_train_images"}.
    """
    num_classes = eval_dataset.num_classes
    train_features, train_labels = sample_split(model, train_dataset, features, cfg["pixels_per_image"], seed)
    probe = train_linear_probe(train_features, train_labels, num_classes, cfg["probe_epochs"], cfg["probe_lr"],
                               cfg["probe_batch_size"], seed)
    del train_features, train_labels
    eval_features, _ = sample_split(model, eval_dataset, features, cfg["pixels_per_image"], seed + 1)
    centroids = fit_spherical_kmeans(eval_features, num_classes, cfg["kmeans_iterations"],
                                     torch.Generator().manual_seed(seed))
    del eval_features

    cluster_confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    probe_confusion = np.zeros_like(cluster_confusion)
    for index in tqdm(range(len(eval_dataset)), desc="score", mininterval=5):
        sample = eval_dataset[index]
        feature_maps = pixel_features(model, sample.image, features)
        cluster_confusion += confusion_matrix(assign_clusters(feature_maps, centroids).numpy(), sample.labels,
                                              num_classes)
        probe_confusion += confusion_matrix(probe_predict(feature_maps, probe).numpy(), sample.labels, num_classes)
    return {"cluster": cluster_miou(cluster_confusion), "probe": segmentation_scores(probe_confusion),
            "num_images": len(eval_dataset), "num_train_images": len(train_dataset)}
