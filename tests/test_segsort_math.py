"""The math of the paper on small hand-checked tensors: k-means (Eq. 5-6), partition, prototypes,
the vMF (Eq. 8) and vMF-N (Eq. 10) losses with their fallback, and the memory bank."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from segsort.clustering import (cluster_pixels, compact_segments, grid_assignment, label_partition,
                                location_features, segment_means, spherical_kmeans)
from segsort.inference import knn_votes, labelled_prototypes, majority, nearest_prototypes
from segsort.losses import MemoryBank, vmf_loss, vmf_n_loss


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=1)


def test_grid_assignment_splits_image_into_equal_blocks():
    ids = grid_assignment(4, 6, (2, 3)).reshape(4, 6)
    assert ids.tolist() == [[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]]


def test_location_features_are_coordinates_over_size():
    loc = location_features(2, 4)
    assert loc[0].tolist() == [[0, 0, 0, 0], [0.5, 0.5, 0.5, 0.5]]
    assert loc[1, 0].tolist() == [0, 0.25, 0.5, 0.75]


def test_segment_means_is_normalised_sum():
    v = unit([1, 0], [0, 1], [1, 0])
    means = segment_means(v, torch.tensor([0, 0, 1]), 3)
    assert torch.allclose(means[0], torch.tensor([1, 1], dtype=torch.float64) / math.sqrt(2))
    assert means[1].tolist() == [1, 0]
    assert means[2].tolist() == [0, 0]  # empty segment


def kmeans(v, init, clusters, iterations):
    """One image's k-means, every pixel counted."""
    return spherical_kmeans(v[None], torch.ones(1, len(v), dtype=v.dtype), init[None], clusters, iterations)[0]


def test_kmeans_m_then_e_step_worked_example():
    # Pixels 0,1 point right, pixels 2,3 point up, but the initial split is {0,2} / {1,3}.
    v = unit([1, 0], [1, 0.1], [0, 1], [0.1, 1])
    init = torch.tensor([0, 1, 0, 1])
    # M step: mu0 = norm(v0 + v2) ~ (1, 1) diagonal, mu1 = norm(v1 + v3) ~ (1.1, 1.1) diagonal (ties broken by E).
    one_step = kmeans(v, init, 2, iterations=1)
    mu = segment_means(v, init, 2)
    assert one_step.tolist() == (v @ mu.T).argmax(1).tolist()
    # More iterations separate the two directions completely.
    final = kmeans(v, torch.tensor([0, 0, 0, 1]), 2, iterations=5)
    assert final[0] == final[1] and final[2] == final[3] and final[0] != final[2]


def test_kmeans_empty_cluster_never_wins():
    v = unit([-1, 0], [-1, 0.1])
    ids = kmeans(v, torch.tensor([0, 0]), 2, iterations=3)
    assert ids.tolist() == [0, 0]  # cluster 1 is empty; its zero centre would beat negative scores otherwise


def test_kmeans_pixels_of_weight_zero_move_no_centre():
    v = unit([1, 0], [1, 0.2], [0, 1])
    weights = torch.tensor([[1.0, 1.0, 0.0]], dtype=v.dtype)
    ids = spherical_kmeans(v[None], weights, torch.tensor([[0, 1, 1]]), 2, iterations=2)[0]
    # Without pixel 2, cluster 1's centre stays on pixel 1: pixel 2 (up) takes the nearer of two rightward centres.
    assert ids[:2].tolist() == [0, 1]


def test_cluster_pixels_uses_location_and_marks_invalid():
    emb = torch.zeros(1, 2, 4, 4)
    emb[0, 0] = 1.0  # identical embeddings: only location can separate pixels
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, 0, 0] = False
    ids = cluster_pixels(emb, valid, location_features(4, 4)[None], (2, 2), 5)[0]
    assert ids[0, 0] == -1
    assert len(torch.unique(ids[valid[0]])) == 4
    assert ids[3, 3] != ids[1, 1]


def test_label_partition_splits_mixed_clusters():
    clusters = torch.tensor([[0, 0, 0, 1, 1, 2, -1]])
    labels = torch.tensor([[3, 3, 5, 5, 5, 3, 255]])
    keys = label_partition(clusters, labels, num_clusters=3, num_classes=6)
    segments, row_keys = compact_segments(keys.reshape(-1), 3 * 6, capacity=6)
    # (cluster, label) pairs: (0,3) (0,5) (1,5) (2,3) -> 4 segments, each with one label; two spare rows.
    assert segments.tolist() == [0, 0, 1, 2, 2, 3, -1]
    assert row_keys.tolist() == [3, 5, 11, 15, -1, -1]
    assert (row_keys[:4] % 6).tolist() == [3, 5, 5, 3]


def test_vmf_loss_hand_computed():
    v = unit([1, 0])
    protos = unit([1, 0], [0, 1], [-1, 0])
    kappa = 2.0
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2)))
    assert vmf_loss(v, torch.tensor([0]), protos, kappa).item() == pytest.approx(expected)
    # A bank prototype is one more negative; a row not in use is none.
    with_bank = torch.cat([protos, unit([0, -1], [1, 0])])
    expected = -math.log(math.exp(2) / (math.exp(2) + 2 * math.exp(0) + math.exp(-2)))
    in_use = torch.tensor([True, True, True, True, False])
    assert vmf_loss(v, torch.tensor([0]), with_bank, kappa, in_use).item() == pytest.approx(expected)


def test_vmf_n_loss_hand_computed_and_fallback():
    kappa = 1.0
    protos = unit([1, 0], [0, 1], [-1, 0])
    proto_labels = torch.tensor([0, 0, 1])
    v = unit([1, 0], [-1, 0], [0, 1])
    # Pixel 0 (label 0) in segment 0: positive = segment 1 only, denominator excludes own segment 0.
    loss0 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1)))
    # Pixel 1 (label 1) in segment 2: no other label-1 prototype -> vMF fallback with own segment.
    loss1 = -math.log(math.exp(1) / (math.exp(-1) + math.exp(0) + math.exp(1)))
    # Pixel 2 has segment id -1 (void): it does not count.
    ids, pixel_labels = torch.tensor([0, 2, -1]), torch.tensor([0, 1, 255])
    loss = vmf_n_loss(v, ids, pixel_labels, protos, proto_labels, kappa, num_classes=2)
    assert loss.item() == pytest.approx((loss0 + loss1) / 2)
    # A bank prototype of label 1 turns pixel 1 into a vMF-N pixel; a bank row not in use (label -1) changes nothing.
    with_bank = torch.cat([protos, unit([-1, 0.0], [1, 0])])
    loss1_n = -math.log(math.exp(1) / (math.exp(1) + math.exp(-1) + math.exp(0)))
    loss = vmf_n_loss(v, ids, pixel_labels, with_bank, torch.tensor([0, 0, 1, 1, -1]), kappa, num_classes=2)
    loss0_with_bank = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1) + math.exp(-1)))
    assert loss.item() == pytest.approx((loss0_with_bank + loss1_n) / 2)


@pytest.mark.parametrize("loss_name", ["vmf", "vmf_n"])
def test_losses_match_finite_difference_gradients(loss_name):
    torch.manual_seed(0)
    raw = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    segment_ids = torch.tensor([0, 0, 1, 1, 2, 2])
    labels = torch.tensor([0, 0, 0, 0, 1, 1])

    def loss_of(x):
        v = F.normalize(x, dim=1)
        protos = segment_means(v, segment_ids, 3)  # gradients flow through the prototypes too
        if loss_name == "vmf":
            return vmf_loss(v, segment_ids, protos, 3.0)
        return vmf_n_loss(v, segment_ids, labels, protos, torch.tensor([0, 0, 1]), 3.0, num_classes=2)

    assert torch.autograd.gradcheck(loss_of, (raw,))


def test_memory_bank_keeps_last_batches_in_order_without_gradient():
    bank = MemoryBank(2)
    assert bank.prototypes() is None
    for i in range(3):
        bank.push(torch.full((i + 1, 2), float(i), requires_grad=True), torch.full((i + 1,), i))
    labels = bank.labels()
    assert sorted(labels[labels >= 0].tolist()) == [1, 1, 2, 2, 2]  # batch 0 was evicted first in, first out
    assert not bank.prototypes().requires_grad
    empty = MemoryBank(0)
    empty.push(torch.ones(1, 2), torch.ones(1, dtype=torch.long))
    assert empty.prototypes() is None


def test_labelled_prototypes_majority_and_agreeing_pixels_only():
    features = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]).reshape(2, 1, 4)
    segments = torch.tensor([[0, 0, 0, 1]])
    labels = np.array([[2, 2, 1, 255]], dtype=np.uint8)
    found = labelled_prototypes(features, segments, labels, num_classes=3, num_segments=2)
    # Segment 0: labels 2,2,1 -> majority 2, prototype from its two label-2 pixels only; segment 1 unlabelled.
    assert found.segment_ids.tolist() == [0] and found.labels.tolist() == [2] and found.pixel_counts.tolist() == [2]
    assert found.prototypes[0].tolist() == [1.0, 0.0]
    assert found.support.tolist() == [[0, 0, -1, -1]]  # the pixels the prototype averages


def test_knn_vote_majority_ties_to_lower_class_and_chunking():
    bank = F.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]]), dim=1)
    bank_labels = torch.tensor([3, 1, 1, 2])
    query = F.normalize(torch.tensor([[1.0, 0.05]]), dim=1)

    def vote(k, chunk=65536):
        sims, idx = nearest_prototypes(query, bank, k, chunk)
        return majority(knn_votes(bank_labels[idx], 4), dim=1), sims, idx

    assert vote(3)[0].tolist() == [1]     # 1,1 beat 3
    assert vote(2)[0].tolist() == [1]     # one vote each for 3 and 1: lower id
    labels, sims, idx = vote(3, chunk=1)
    assert labels.tolist() == [1] and idx[0].tolist() == [0, 1, 2]  # most similar first, across chunks
    assert torch.allclose(sims[0], query[0] @ bank[:3].T)
