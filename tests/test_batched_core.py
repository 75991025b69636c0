"""The batched, sync-free SegSort core equals the per-image reference (tests/reference_core.py) in float64,
on random batches with void pixels, padded crops, empty clusters, fallback pixels and the memory bank; and
a training step makes no host sync (a GPU test checks it where CUDA exists)."""
import contextlib

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import reference_core as reference
from segsort import losses
from segsort import train as training
from segsort.clustering import cluster_pixels, grid_assignment, label_partition, location_features
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.inference import (InferenceConfig, labelled_prototypes, query_prototypes, query_votes, segment_count,
                               segment_image, segment_queries)
from segsort.io import IGNORE_LABEL
from segsort.losses import MemoryBank
from segsort.models import build_model, network_config
from segsort.profiling import count_operators

TOLERANCE = 1e-10
GRID = (3, 3)
CLASSES = 5
CFG = {"grid": list(GRID), "kmeans_iterations": 4, "kappa": 10.0, "grid_blocks": "fixed_size",
       "unsupervised_padding": "dropped"}  # the reference core drops the padding


def random_batch(step: int, images: int = 4, size: int = 12, rare_class: bool = False):
    """(embeddings (B, 6, h, w) float64 unit, labels, locations, blocks) of one step.

    Image 0 is all void; image 1 has random void pixels; image 2 is a padded crop (its right third void)
    whose k-means blocks come from a larger original image, so most clusters start empty; with
    `rare_class`, class 4 shows on one pixel only: its segment is the class's only one, and the pixel has
    no positive (the vMF fallback) unless the memory bank holds one."""
    generator = torch.Generator().manual_seed(step)
    embeddings = F.normalize(torch.randn(images, 6, size, size, generator=generator, dtype=torch.float64), dim=1)
    labels = torch.randint(0, CLASSES - 1, (images, size // 3, size // 3), generator=generator)
    labels = labels.repeat_interleave(3, 1).repeat_interleave(3, 2)  # blocks of one class
    labels[1][torch.rand(size, size, generator=generator) < 0.2] = IGNORE_LABEL
    labels[0] = IGNORE_LABEL
    labels[2, :, 2 * size // 3:] = IGNORE_LABEL
    if rare_class:
        labels[3, 0, 0] = CLASSES - 1
    locations = location_features(size, size)[None].repeat(images, 1, 1, 1)
    blocks = grid_assignment(size, size, GRID).reshape(1, size, size).repeat(images, 1, 1)
    blocks[2] = grid_assignment(3 * size, 3 * size, GRID).reshape(3 * size, 3 * size)[:size, :size]
    return embeddings.requires_grad_(), labels, locations, blocks


def classes_present(labels):
    return sum(len(set(image.unique().tolist()) - {IGNORE_LABEL}) for image in labels)


def per_image_ids(ids):
    """Cluster ids renumbered 0..n-1 per image in increasing order, as the reference numbers them."""
    out = torch.full_like(ids, -1)
    for b, image in enumerate(ids):
        valid = image >= 0
        if valid.any():
            out[b][valid] = torch.unique(image[valid], return_inverse=True)[1]
    return out


@pytest.mark.parametrize("with_blocks", [False, True])
def test_batched_kmeans_equals_the_per_image_reference(with_blocks):
    embeddings, labels, locations, blocks = random_batch(0)
    valid = labels != IGNORE_LABEL
    blocks = blocks if with_blocks else None
    batched = cluster_pixels(embeddings.detach(), valid, locations, GRID, 6, blocks)
    for b in range(1, len(labels)):
        expected = reference.cluster_pixels(embeddings[b].detach(), valid[b], locations[b], GRID, 6,
                                            None if blocks is None else blocks[b])
        assert torch.equal(per_image_ids(batched[b:b + 1])[0], expected)
    assert (batched[0] == -1).all()
    if with_blocks:  # the padded crop starts in the one block of the original image that it shows
        assert set(batched[2][valid[2]].unique().tolist()) <= {0}


@pytest.mark.parametrize("objective", ["supervised", "unsupervised"])
def test_losses_over_pixel_chunks_equal_one_pass(objective, monkeypatch):
    """The losses' (pixels x prototypes) matrices made 50 pixels at a time, recomputed for the gradient."""
    def loss_and_gradient():
        embeddings, labels, locations, blocks = random_batch(5)
        bank = MemoryBank(1)
        bank.push(F.normalize(torch.randn(7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9)),
                              dim=1), torch.tensor([0, 1, 2, 3, -1, 1, 0]))
        if objective == "supervised":
            loss = training.supervised_loss(embeddings, labels, locations, CLASSES, CFG, bank,
                                            GRID[0] * GRID[1] * classes_present(labels), blocks)
        else:
            loss = training.unsupervised_loss(embeddings, labels, CFG, bank, classes_present(labels))
        loss.backward()
        return loss.item(), embeddings.grad

    whole, whole_grad = loss_and_gradient()
    monkeypatch.setattr(losses, "PIXEL_CHUNK", 50)  # 576 pixels: 12 chunks, the last one partial
    chunked, chunked_grad = loss_and_gradient()
    assert abs(whole - chunked) < TOLERANCE and (whole_grad - chunked_grad).abs().max() < TOLERANCE


def test_a_padded_crop_clusters_as_the_image_alone():
    embeddings, labels, locations, _ = random_batch(1)
    image = embeddings[1:2, :, :, :8].detach()
    alone = cluster_pixels(image, torch.ones(1, 12, 8, dtype=torch.bool), locations[1:2, :, :, :8], GRID, 5,
                           grid_assignment(12, 8, GRID).reshape(1, 12, 8))
    padded_valid = torch.zeros(1, 12, 12, dtype=torch.bool)
    padded_valid[:, :, :8] = True
    blocks = torch.zeros(1, 12, 12, dtype=torch.long)
    blocks[:, :, :8] = grid_assignment(12, 8, GRID).reshape(12, 8)
    padded = cluster_pixels(embeddings[1:2].detach(), padded_valid, locations[1:2], GRID, 5, blocks)
    assert torch.equal(padded[:, :, :8], alone) and (padded[:, :, 8:] == -1).all()


def run_steps(objective: str, memory_batches: int, static_shapes: bool, steps: int = 4):
    """Losses and embedding gradients of both cores over `steps` steps, each core with its own memory bank;
    the batched core's prototype tables sized by the host's bound (static_shapes) or exactly."""
    new_bank, old_bank = MemoryBank(memory_batches), reference.MemoryBank(memory_batches)
    results = []
    for step in range(steps):
        embeddings, labels, locations, blocks = random_batch(step, rare_class=step == 0)
        old_embeddings = embeddings.detach().clone().requires_grad_()
        if objective == "supervised":
            capacity = GRID[0] * GRID[1] * classes_present(labels) if static_shapes else None
            new = training.supervised_loss(embeddings, labels, locations, CLASSES, CFG, new_bank, capacity, blocks)
            old = reference.supervised_loss(old_embeddings, labels, locations, CLASSES, CFG, old_bank, blocks)
        else:
            segments = labels * 3 + torch.arange(labels.shape[-1]) // 4  # pseudo-segments: any id map
            segments[labels == IGNORE_LABEL] = IGNORE_LABEL
            capacity = classes_present(segments) if static_shapes else None
            new = training.unsupervised_loss(embeddings, segments, CFG, new_bank, capacity)
            old = reference.unsupervised_loss(old_embeddings, segments, CFG, old_bank)
        new.backward()
        old.backward()
        results.append((new.item(), old.item(), embeddings.grad, old_embeddings.grad))
    return results


@pytest.mark.parametrize("static_shapes", [True, False])
@pytest.mark.parametrize("objective, memory_batches", [("supervised", 0), ("supervised", 2),
                                                       ("unsupervised", 0), ("unsupervised", 2)])
def test_batched_losses_equal_the_per_image_reference(objective, memory_batches, static_shapes):
    for new_loss, old_loss, new_grad, old_grad in run_steps(objective, memory_batches, static_shapes):
        assert abs(new_loss - old_loss) < TOLERANCE
        assert (new_grad - old_grad).abs().max() < TOLERANCE
        assert new_grad.abs().sum() > 0


def test_an_all_void_batch_gives_no_loss_and_keeps_the_memory_bank():
    bank = MemoryBank(1)
    embeddings, labels, locations, blocks = random_batch(0)
    training.supervised_loss(embeddings, labels, locations, CLASSES, CFG, bank,
                             GRID[0] * GRID[1] * classes_present(labels), blocks)
    kept = bank.batches()
    void = torch.full_like(labels, IGNORE_LABEL)
    assert training.supervised_loss(embeddings, void, locations, CLASSES, CFG, bank, 0, blocks) is None
    # Void only on the embedding grid (the crop's labels vanished in the resize): a zero loss, bank kept.
    loss = training.supervised_loss(embeddings, void, locations, CLASSES, CFG, bank, 9, blocks)
    assert loss.item() == 0
    assert all(torch.equal(a, b) and torch.equal(c, d) for (a, c), (b, d) in zip(bank.batches(), kept))


def test_memory_bank_ring_keeps_the_last_batches_and_grows():
    bank = MemoryBank(2)
    for count in (2, 3, 1):
        bank.push(torch.full((count, 2), float(count)), torch.full((count,), count))
    labels = bank.labels()
    assert sorted(labels[labels >= 0].tolist()) == [1, 3, 3, 3]  # the batch of 2 was evicted first
    assert [l.tolist() for _, l in bank.batches()] == [[3, 3, 3], [1]]  # oldest first
    assert bank.prototypes().shape == (2 * 3, 2)  # grew to the largest batch


def test_inference_segments_and_prototypes_equal_the_reference():
    features = F.normalize(torch.randn(6, 20, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3)),
                           dim=0)
    labels = np.zeros((20, 16), dtype=np.uint8)
    labels[5:9] = IGNORE_LABEL
    for given in (None, labels):
        segments = segment_image(features, GRID, 5, labels=given)
        valid = torch.ones(20, 16, dtype=torch.bool) if given is None else torch.from_numpy(given != IGNORE_LABEL)
        expected = reference.cluster_pixels(features, valid, location_features(20, 16), GRID, 5)
        assert torch.equal(per_image_ids(segments[None])[0], expected)
    segments = segment_image(features, GRID, 5)
    queries = query_prototypes(features, segments, segment_count(GRID))
    flat = features.reshape(6, -1).T
    used = segments.unique()
    expected = reference.segment_means(flat, per_image_ids(segments[None])[0].reshape(-1), len(used))
    assert (queries[used] - expected).abs().max() < TOLERANCE


def test_the_bank_prototypes_of_an_image_make_no_host_sync():
    """labelled_prototypes works on fixed sizes (the segment count known on the host) until its table comes
    to the host: no scalar read, `nonzero`, `unique` or boolean indexing on the device's tensors."""
    generator = torch.Generator().manual_seed(4)
    features = F.normalize(torch.randn(6, 20, 16, dtype=torch.float64, generator=generator), dim=0)
    labels = torch.randint(0, CLASSES, (20, 16), generator=generator).numpy().astype(np.uint8)
    labels[5:9] = IGNORE_LABEL
    segments = segment_image(features, GRID, 5, labels=labels)
    found = labelled_prototypes(features, segments, labels, CLASSES, segment_count(GRID))
    assert len(found.segment_ids) > 0 and (found.support[5:9] == -1).all()
    operators, syncs = count_operators(
        lambda: labelled_prototypes(features, segments, labels, CLASSES, segment_count(GRID)))
    assert syncs == 0 and operators > 0


def test_a_supervised_step_makes_no_host_sync_on_the_cpu():
    bank = MemoryBank(2)
    embeddings, labels, locations, blocks = random_batch(0)
    capacity = GRID[0] * GRID[1] * classes_present(labels)  # the batch counts its classes on the host

    def step():
        training.supervised_loss(embeddings, labels, locations, CLASSES, CFG, bank, capacity, blocks).backward()

    step()
    operators, syncs = count_operators(step)
    assert syncs == 0 and operators > 0


@pytest.mark.parametrize("objective", ["supervised", "unsupervised"])
def test_torch_compile_captures_each_loss_whole(objective):
    """No host sync and no size read from a tensor, so torch.compile traces each loss, the memory bank's push
    included, as one graph (fullgraph: a graph break raises), as CUDA graphs need; its values are the eager
    ones. The eager backend traces without generating code, so this checks the capture, not a compiler."""
    torch._dynamo.reset()
    banks = MemoryBank(2), MemoryBank(2)

    def loss(bank, capacity, embeddings, labels, locations, blocks):
        if objective == "supervised":
            return training.supervised_loss(embeddings, labels, locations, CLASSES, CFG, bank, capacity, blocks)
        return training.unsupervised_loss(embeddings, labels, CFG, bank, capacity)  # labels as pseudo-segments

    compiled = torch.compile(loss, backend="eager", fullgraph=True)
    for step in range(3):  # the bank fills: its first push allocates, later ones reuse the ring
        batch = random_batch(step, rare_class=step == 0)
        capacity = classes_present(batch[1]) * (GRID[0] * GRID[1] if objective == "supervised" else 1)  # host
        eager_loss = loss(banks[0], capacity, *batch)
        compiled_loss = compiled(banks[1], capacity, batch[0].detach().requires_grad_(), *batch[1:])
        assert torch.equal(eager_loss, compiled_loss)
        assert torch.equal(banks[0].prototypes(), banks[1].prototypes())


def test_torch_compile_captures_the_inference_of_a_view_whole():
    """k-means, the query prototypes and the kNN votes of one view (segment_queries, query_votes) in one graph."""
    torch._dynamo.reset()
    config = InferenceConfig(grid=GRID, kmeans_iterations=4, knn_k=5)
    generator = torch.Generator().manual_seed(5)
    features = F.normalize(torch.randn(6, 20, 16, dtype=torch.float64, generator=generator), dim=0)
    bank = F.normalize(torch.randn(40, 6, dtype=torch.float64, generator=generator), dim=1)
    bank_labels = torch.randint(0, CLASSES, (40,), generator=generator)

    def votes(features, bank, bank_labels):
        segments, queries = segment_queries(features, config)
        return segments, query_votes(queries, bank, bank_labels, config.knn_k, CLASSES)[0]

    eager, compiled = votes(features, bank, bank_labels), torch.compile(votes, backend="eager", fullgraph=True)
    assert all(torch.equal(a, b) for a, b in zip(eager, compiled(features, bank, bank_labels)))


def training_steps(dataset_root, cfg: dict, objective: str, device: torch.device, run_step, steps: int = 2):
    """`steps` training steps of Lite0 on `device` (forward in autocast on a GPU, loss, backward, SGD update),
    each called as run_step(step_function) (e.g. under the GPU's sync check, or counted); returns the last loss."""
    dataset = VOCLayout(dataset_root, "train_aug", len(class_names("tiny")),
                        segments_dir=dataset_root / "SegmentationClass")
    model = build_model(network_config(cfg["networks"]["lite0_pyramid"], "segsort", cfg["embedding_dim"],
                                       dataset.num_classes)).to(device).train()
    optimizer = training.make_optimizer(model, 1e-3, cfg["optimizer"])
    bank = training.memory_bank(objective, {**cfg["segsort"], "unsupervised_memory": True})
    grid = training.image_frame_grid(objective, cfg["segsort"])
    losses = []

    def step_function():
        loss = training.objective_loss(model, objective, batch, dataset.num_classes, cfg["segsort"], bank,
                                       autocast=device.type == "cuda", static_shapes=True)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss)

    for step in range(steps):
        batch = training.make_batch(dataset, [0, 1], step, 0, 96, cfg["optimizer"], grid=grid).to(device)
        run_step(step_function)
    return losses[-1]


@contextlib.contextmanager
def cuda_sync_is_an_error():
    """Any host sync raises (torch.cuda.set_sync_debug_mode), under the deterministic kernels every stage
    asks for (segsort.stage.setup_torch), which may take other code paths."""
    torch.cuda.synchronize()
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")
        torch._C._set_deterministic_algorithms(*deterministic)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("objective", ["supervised", "unsupervised"])
def test_a_training_step_on_the_gpu_never_waits_for_the_device(small_params, small_dataset, objective):
    def checked(step_function):
        with cuda_sync_is_an_error():
            step_function()

    loss = training_steps(small_dataset, small_params, objective, torch.device("cuda"), checked)
    assert torch.isfinite(loss).item()


@pytest.mark.parametrize("objective", ["supervised", "unsupervised"])
def test_the_training_steps_of_the_gpu_test_run_on_the_cpu(small_params, small_dataset, objective):
    """The GPU test's steps, on the CPU and profiled: they run, and make no host sync."""
    syncs = []
    loss = training_steps(small_dataset, small_params, objective, torch.device("cpu"),
                          lambda step_function: syncs.append(count_operators(step_function)[1]))
    assert torch.isfinite(loss) and syncs == [0, 0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_inference_of_a_view_on_the_gpu_never_waits_for_the_device():
    device = torch.device("cuda")
    config = InferenceConfig(grid=GRID, kmeans_iterations=4, knn_k=5)
    features = F.normalize(torch.randn(6, 40, 32, device=device), dim=0)
    bank = F.normalize(torch.randn(100, 6, device=device), dim=1)
    bank_labels = torch.randint(0, CLASSES, (100,), device=device)
    with cuda_sync_is_an_error():
        segments, queries = segment_queries(features, config)
        votes = query_votes(queries, bank, bank_labels, config.knn_k, CLASSES)[0]
    assert segments.shape == (40, 32) and votes.sum().item() == config.knn_k * segment_count(GRID)


@pytest.mark.parametrize("grid_frame", ["image", "crop"])
def test_the_host_counted_capacity_bounds_the_segments_of_real_batches(small_dataset, params, grid_frame):
    """Batch.segment_capacity, counted on the crops, holds on the embedding grid after k-means."""
    cfg = {**params["segsort"], "grid_frame": grid_frame, "kmeans_iterations": 3}
    grid, num_clusters = tuple(cfg["grid"]), cfg["grid"][0] * cfg["grid"][1]
    dataset = VOCLayout(small_dataset, "train_aug", len(class_names("tiny")),
                        segments_dir=small_dataset / "SegmentationClass")
    for step in range(4):
        batch = training.make_batch(dataset, [0, 1, 2, 3], step, 0, 96, params["optimizer"],
                                    grid=training.image_frame_grid("supervised", cfg))
        size = (12, 12)  # stride 8
        labels = training.to_embedding_grid(batch.labels, size)
        blocks = None if batch.blocks is None else training.to_embedding_grid(batch.blocks, size)
        embeddings = F.normalize(torch.randn(4, 8, *size, generator=torch.Generator().manual_seed(step)), dim=1)
        clusters = cluster_pixels(embeddings, labels != IGNORE_LABEL, training.to_embedding_grid(batch.locations, size),
                                  grid, 3, blocks)
        keys = label_partition(clusters.flatten(1), labels.flatten(1), num_clusters, len(class_names("tiny")))
        assert len(keys[keys >= 0].unique()) <= batch.segment_capacity("supervised", num_clusters)
        segments = training.to_embedding_grid(batch.segments, size)
        pseudo = [len(set(s.unique().tolist()) - {IGNORE_LABEL}) for s in segments]
        assert sum(pseudo) <= batch.segment_capacity("unsupervised", num_clusters)
