"""The conventions where this implementation follows the authors' release (docs/segsort_core.md), each
pinned on a small hand-checked input: void pixels in the bank's k-means, the memory bank of the
unsupervised loss, the frame of k-means' initial grid, the order of kNN ties, float32 embeddings under
autocast, and an all-void batch against the memory bank."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from segsort.clustering import cluster_pixels, grid_assignment, location_features, spherical_kmeans
from segsort.data.voc import Sample, augment
from segsort.inference import knn_votes, labelled_prototypes, nearest_prototypes, segment_image
from segsort.io import IGNORE_LABEL
from segsort.losses import MemoryBank, vmf_loss
from segsort.models import build_model, network_config
from segsort.stage import load_params
from segsort.train import Batch, image_frame_grid, memory_bank, objective_loss, supervised_loss, unsupervised_loss

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def unit_features(dim: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(dim, height, width, generator=torch.Generator().manual_seed(seed)), dim=0)


# 1. The bank's k-means leaves void pixels out, as training does.

def test_bank_kmeans_leaves_void_pixels_out():
    features = unit_features(4, 6, 8)
    labels = np.zeros((6, 8), dtype=np.uint8)
    labels[:, 4:] = 1
    labels[:, 3:5] = IGNORE_LABEL  # a void band between the two objects, as VOC draws them
    segments = segment_image(features, (2, 2), 3, labels=labels)
    void = torch.from_numpy(labels == IGNORE_LABEL)
    assert (segments[void] == -1).all() and (segments[~void] >= 0).all()
    # The other pixels are clustered exactly as k-means on them alone would cluster them.
    joint = F.normalize(torch.cat([features, location_features(6, 8)]), dim=0).reshape(6, -1).T
    init = torch.tensor([[r * 2 // 6 * 2 + c * 2 // 8 for c in range(8)] for r in range(6)]).reshape(-1)
    kept = ~void.reshape(-1)
    alone = spherical_kmeans(joint[kept][None], torch.ones(1, int(kept.sum())), init[kept][None], 4, 3)[0]
    assert torch.equal(segments[~void], alone)


def test_void_pixels_change_no_bank_prototype():
    features = unit_features(4, 6, 8)
    labels = np.zeros((6, 8), dtype=np.uint8)
    labels[:, 4:] = 1
    labels[:, 3:5] = IGNORE_LABEL
    segments = segment_image(features, (2, 2), 3, labels=labels)
    before = labelled_prototypes(features, segments, labels, 2, 4)
    wild = features.clone()
    wild[:, :, 3:5] = F.normalize(torch.ones(4, 6, 2), dim=0)  # whatever the network says about void pixels
    after = labelled_prototypes(wild, segment_image(wild, (2, 2), 3, labels=labels), labels, 2, 4)
    assert np.array_equal(before.prototypes, after.prototypes) and np.array_equal(before.labels, after.labels)


def test_an_all_void_bank_image_gives_no_prototype():
    labels = np.full((4, 4), IGNORE_LABEL, dtype=np.uint8)
    features = unit_features(3, 4, 4)
    found = labelled_prototypes(features, segment_image(features, (2, 2), 2, labels=labels), labels, 2, 4)
    assert len(found.labels) == 0 and (found.support == -1).all()


# 2. The unsupervised loss compares each pixel with its own batch's prototypes, unless configured otherwise.

def test_every_preset_follows_the_release_by_default():
    params = load_params()
    for name, preset in params["presets"].items():
        assert preset["segsort"]["unsupervised_memory"] is False, name
        assert preset["segsort"]["grid_frame"] == "image", name
        assert preset["segsort"]["grid_blocks"] == "fixed_size", name
        assert preset["segsort"]["unsupervised_padding"] == "segment", name
        assert preset["inference"]["bank_locations"] == "last_pixel", name


def unsupervised_batches():
    generator = torch.Generator().manual_seed(1)
    embeddings = [F.normalize(torch.randn(2, 3, 4, 4, generator=generator), dim=1) for _ in range(2)]
    segments = torch.tensor([[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2).expand(2, 4, 4)
    return embeddings, segments


def test_unsupervised_loss_uses_no_memory_bank_by_default():
    cfg = {"kappa": 10.0, "memory_batches": 2, "unsupervised_memory": False, "unsupervised_padding": "dropped"}
    bank = memory_bank("unsupervised", cfg)
    (first, second), segments = unsupervised_batches()
    unsupervised_loss(first, segments, cfg, bank, capacity=8)
    loss = unsupervised_loss(second, segments, cfg, bank, capacity=8)
    assert bank.prototypes() is None
    pixels = second.permute(0, 2, 3, 1).reshape(-1, 3)
    ids = (segments.reshape(2, -1) + torch.tensor([[0], [4]])).reshape(-1)
    prototypes = F.normalize(torch.zeros(8, 3).index_add_(0, ids, pixels), dim=1)
    assert torch.allclose(loss, vmf_loss(pixels, ids, prototypes, 10.0))


def test_unsupervised_memory_adds_the_previous_batches_as_negatives():
    cfg = {"kappa": 10.0, "memory_batches": 2, "unsupervised_memory": True, "unsupervised_padding": "dropped"}
    bank = memory_bank("unsupervised", cfg)
    (first, second), segments = unsupervised_batches()
    unsupervised_loss(first, segments, cfg, bank, capacity=8)
    remembered = bank.prototypes().clone()
    loss = unsupervised_loss(second, segments, cfg, bank, capacity=8)
    pixels = second.permute(0, 2, 3, 1).reshape(-1, 3)
    ids = (segments.reshape(2, -1) + torch.tensor([[0], [4]])).reshape(-1)
    prototypes = F.normalize(torch.zeros(8, 3).index_add_(0, ids, pixels), dim=1)
    assert len(remembered) == 2 * 8  # two slots of 8 rows, the second not in use yet
    in_use = torch.tensor([True] * 8 + [True] * 8 + [False] * 8)
    assert torch.allclose(loss, vmf_loss(pixels, ids, torch.cat([prototypes, remembered]), 10.0, in_use))
    assert memory_bank("supervised", {**cfg, "unsupervised_memory": False}).num_batches == 2


# 3. Where k-means' initial grid is laid in training.

class FixedDraws:
    """Stands in for the augmentation's random generator: scale 2, mirrored, crop at (top, left)."""

    def __init__(self, top: int, left: int):
        self.offsets = [top, left]

    def uniform(self, low, high):
        return 2.0

    def random(self):
        return 0.0  # < 0.5: mirror

    def integers(self, low, high):
        return self.offsets.pop(0)


def test_image_frame_blocks_of_a_crop_worked_example():
    # A 4 x 6 image with a 2 x 3 grid has the blocks
    #   0 0 1 1 2 2            scale 2 (8 x 12) and mirror:  2 2 2 2 1 1 1 1 0 0 0 0  (rows 0-3)
    #   0 0 1 1 2 2                                          5 5 5 5 4 4 4 4 3 3 3 3  (rows 4-7)
    #   3 3 4 4 5 5            and the 4 x 4 crop at row 2, column 3 keeps blocks 1, 2, 4 and 5 only.
    #   3 3 4 4 5 5
    sample = Sample("x", np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8), None)
    *_, blocks = augment(sample, FixedDraws(2, 3), crop=4, min_scale=2.0, max_scale=2.0, grid=(2, 3))
    assert blocks.tolist() == [[2, 1, 1, 1], [2, 1, 1, 1], [5, 4, 4, 4], [5, 4, 4, 4]]
    # k-means starts from those 4 blocks (0 iterations: the initial clusters) ...
    embedding, valid = unit_features(3, 4, 4), torch.ones(4, 4, dtype=torch.bool)
    locations = torch.zeros(2, 4, 4)
    image_frame = cluster_pixels(embedding[None], valid[None], locations[None], (2, 3), 0,
                                 torch.from_numpy(blocks.astype(np.int64))[None])[0]
    assert image_frame.tolist() == [[2, 1, 1, 1], [2, 1, 1, 1], [5, 4, 4, 4], [5, 4, 4, 4]]
    # ... while on the crop's own frame it starts from a 2 x 3 grid laid on the crop: blocks of ceil(4 / 3) = 2
    # columns as the release cuts them (2 of the 3 columns of blocks), or evenly, all 6 blocks.
    crop_frame = cluster_pixels(embedding[None], valid[None], locations[None], (2, 3), 0)[0]
    assert crop_frame.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [3, 3, 4, 4], [3, 3, 4, 4]]
    even = cluster_pixels(embedding[None], valid[None], locations[None], (2, 3), 0, grid_blocks="even")[0]
    assert even.tolist() == [[0, 0, 1, 2], [0, 0, 1, 2], [3, 3, 4, 5], [3, 3, 4, 5]]


def test_padding_of_a_small_image_is_ignored_and_starts_in_block_zero():
    sample = Sample("x", np.zeros((2, 2, 3), np.uint8), np.ones((2, 2), np.uint8), None)
    _, labels, _, _, blocks = augment(sample, FixedDraws(0, 0), crop=6, min_scale=2.0, max_scale=2.0, grid=(2, 2))
    assert blocks[:4, :4].tolist() == [[1, 1, 0, 0]] * 2 + [[3, 3, 2, 2]] * 2
    assert (labels[4:] == IGNORE_LABEL).all() and (labels[:, 4:] == IGNORE_LABEL).all()
    assert (blocks[4:] == 0).all() and (blocks[:, 4:] == 0).all()


def test_only_supervised_runs_with_the_image_frame_carry_blocks():
    cfg = {"grid": [5, 5], "grid_frame": "image"}
    assert image_frame_grid("supervised", cfg) == (5, 5)
    assert image_frame_grid("supervised", {**cfg, "grid_frame": "crop"}) is None
    assert image_frame_grid("unsupervised", cfg) is None and image_frame_grid("softmax", cfg) is None


# 4. kNN ties keep the lower bank index, on every device.

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("chunk", [4, 5, 65536])
def test_knn_ties_keep_the_lower_bank_index(device, chunk):
    generator = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(16, 8, generator=generator), dim=1)
    query = F.normalize(torch.randn(1, 8, generator=generator), dim=1)
    bank = bank - 2 * (bank @ query.T).clamp(min=0) * query  # every other prototype points away from the query
    for index in (13, 3, 8):
        bank[index] = query[0]  # three exactly equal similarities ...
    labels = torch.zeros(16, dtype=torch.long)
    labels[[3, 8, 13]] = torch.tensor([2, 1, 1])  # ... carrying different labels
    sims, indices = nearest_prototypes(query.to(device), bank.to(device), k=2, chunk=chunk)
    assert indices.tolist() == [[3, 8]] and sims[0, 0] == sims[0, 1]
    assert knn_votes(labels.to(device)[indices], 3).tolist() == [[0, 1, 1]]
    assert nearest_prototypes(query.to(device), bank.to(device), k=4, chunk=chunk)[1].tolist()[0][:3] == [3, 8, 13]


# 5. The embedding, its normalisation, k-means and the losses stay in float32 under autocast.

@pytest.mark.slow
def test_embedding_and_loss_stay_float32_under_bfloat16_autocast():
    params = load_params()
    torch.manual_seed(0)
    model = build_model(network_config(params["networks"]["lite0_pyramid"], "segsort", 8, 3))
    seen = {}

    def record(name):
        def hook(module, args, out):
            seen[name] = out.dtype
        return hook

    model.decoder.register_forward_hook(record("decoder"))
    model.embedding.register_forward_hook(record("embedding"))
    images = torch.rand(2, 3, 64, 64) * 255
    labels = torch.randint(3, (2, 64, 64))
    locations = torch.stack([location_features(64, 64)] * 2)
    batch = Batch(images, labels, None, locations, None, ["a", "b"], classes_present=(3, 3), blocks_present=None,
                  segments_present=None)
    cfg = {"kappa": 10.0, "grid": [2, 2], "kmeans_iterations": 2, "grid_blocks": "fixed_size"}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(images).dtype == torch.float32
    loss = objective_loss(model, "supervised", batch, 3, cfg, MemoryBank(2), autocast=True)
    assert seen == {"decoder": torch.bfloat16, "embedding": torch.float32}
    assert loss.dtype == torch.float32


# 6. An all-void batch leaves the memory bank as it was.

def test_an_all_void_batch_does_not_evict_a_real_batch():
    cfg = {"kappa": 10.0, "grid": [2, 2], "kmeans_iterations": 2, "memory_batches": 1, "grid_blocks": "fixed_size"}
    bank = memory_bank("supervised", cfg)
    embeddings = F.normalize(torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    locations = location_features(4, 4)[None]
    supervised_loss(embeddings, torch.zeros(1, 4, 4, dtype=torch.long), locations, 2, cfg, bank, capacity=4)
    real = bank.batches()
    void = torch.full((1, 4, 4), IGNORE_LABEL, dtype=torch.long)
    assert supervised_loss(embeddings, void, locations, 2, cfg, bank, capacity=0) is None
    bank.push(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    bank.push(torch.zeros(4, 3), torch.full((4,), -1))  # rows, none in use
    assert len(bank.batches()) == 1
    assert torch.equal(bank.batches()[0][0], real[0][0]) and torch.equal(bank.batches()[0][1], real[0][1])


# 7. The release's initial blocks: ceil(H / rows) x ceil(W / cols) pixels each.

@pytest.mark.parametrize(("size", "rows", "fixed_size", "even"), [
    (8, 4, [0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 1, 1, 2, 2, 3, 3]),           # divides: both cuts agree
    (10, 4, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3], [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]),  # blocks of 3, the last of 1
    (9, 4, [0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 0, 0, 1, 1, 2, 2, 3, 3]),      # 3 blocks of 3: fewer than 4
    (7, 5, [0, 0, 1, 1, 2, 2, 3], [0, 0, 1, 2, 2, 3, 4]),                  # 4 blocks of 5
    (3, 5, [0, 1, 2], [0, 1, 3]),                                          # fewer pixels than blocks
])
def test_initial_blocks_worked_examples(size, rows, fixed_size, even):
    blocks = grid_assignment(size, 1, (rows, 1)).tolist()
    assert blocks == fixed_size
    assert grid_assignment(size, 1, (rows, 1), blocks="even").tolist() == even
    # the same cut along the columns, and ids row * columns + column
    assert grid_assignment(1, size, (1, rows)).tolist() == fixed_size
    assert grid_assignment(size, 2, (rows, 2)).view(size, 2).tolist() == [[2 * b, 2 * b + 1] for b in fixed_size]


def test_inference_and_training_take_the_blocks_of_grid_blocks():
    features, valid, locations = unit_features(3, 9, 1), torch.ones(9, 1, dtype=torch.bool), torch.zeros(2, 9, 1)
    fixed = cluster_pixels(features[None], valid[None], locations[None], (4, 1), 0)[0]
    even = cluster_pixels(features[None], valid[None], locations[None], (4, 1), 0, grid_blocks="even")[0]
    assert fixed.flatten().tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and even.flatten().tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3]
    assert segment_image(features, (4, 1), 0).flatten().tolist() == fixed.flatten().tolist()
    sample = Sample("x", np.zeros((9, 1, 3), np.uint8), np.zeros((9, 1), np.uint8), None)
    *_, blocks = augment(sample, FixedDraws(0, 0), crop=9, min_scale=1.0, max_scale=1.0, grid=(4, 1))
    # blocks 0-2 of 3 rows on the original image, scaled by 2 (FixedDraws), the crop keeps its first 9 rows
    assert blocks[:, 0].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]


# 8. The unsupervised loss keeps a crop's padding as one more segment of its image.

def test_padding_is_one_more_segment_of_its_image():
    (embeddings, _), segments = unsupervised_batches()
    padded = segments.clone()
    padded[0, 3] = IGNORE_LABEL  # image 0's last row is padding
    padded[1, :, 3] = IGNORE_LABEL  # image 1's last column too
    cfg = {"kappa": 10.0, "memory_batches": 0, "unsupervised_memory": False, "unsupervised_padding": "segment"}
    kept = unsupervised_loss(embeddings, padded, cfg, memory_bank("unsupervised", cfg), capacity=None)
    # the same as naming the padding with an id of its own (9 here), padding dropped
    named = torch.where(padded == IGNORE_LABEL, 9, padded)
    assert torch.allclose(kept, unsupervised_loss(embeddings, named, {**cfg, "unsupervised_padding": "dropped"},
                                                  memory_bank("unsupervised", cfg), capacity=None))
    dropped = unsupervised_loss(embeddings, padded, {**cfg, "unsupervised_padding": "dropped"},
                                memory_bank("unsupervised", cfg), capacity=None)
    pixels = embeddings.permute(0, 2, 3, 1).reshape(-1, 3)
    ids = padded.reshape(2, -1) + torch.tensor([[0], [4]])
    keep = (padded != IGNORE_LABEL).reshape(-1)
    ids = torch.where(keep, ids.reshape(-1), -1)
    prototypes = F.normalize(torch.zeros(8, 3).index_add_(0, ids[keep], pixels[keep]), dim=1)
    assert torch.allclose(dropped, vmf_loss(pixels[keep], ids[keep], prototypes, 10.0))
    assert not torch.allclose(kept, dropped)


# 9. The bank's location features: (y, x) / (H - 1, W - 1), as the release's prototype extraction.

def test_bank_location_features_reach_both_ends():
    ys, xs = location_features(3, 5, scale="last_pixel")
    assert ys[:, 0].tolist() == [0.0, 0.5, 1.0] and xs[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    ys, xs = location_features(3, 5)
    assert torch.allclose(ys[:, 0], torch.tensor([0, 1 / 3, 2 / 3])) and torch.allclose(xs[0], torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8]))
    assert location_features(1, 1, scale="last_pixel").flatten().tolist() == [0.0, 0.0]


def test_the_bank_stage_segments_with_the_bank_locations(monkeypatch, small_dataset, model_and_bank):
    import segsort.evaluate as evaluation
    from segsort.data.voc import VOCLayout

    seen = []
    monkeypatch.setattr(evaluation, "segment_image", lambda *args: seen.append(args[-2:]) or segment_image(*args))
    model = model_and_bank[2]
    rows = evaluation.bank_rows(model, VOCLayout(small_dataset, "train", 21), "embedding", (3, 3), 2)
    next(rows)
    assert seen == [("fixed_size", "last_pixel")]
