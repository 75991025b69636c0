"""Figures 8-10 (prototype maps) on a small synthetic bank: t-SNE canvas layout, FINCH clusters, bad banks."""
import numpy as np
import pytest
import torch
from PIL import Image

from segsort.bank import read_bank, write_bank
from segsort.inference import LabelledSegments
from segsort.io import DataError
from segsort.prototype_maps import (finch_clusters, finch_figure, segment_tile, tsne_canvas, tsne_figure,
                                    tsne_layout)

NAMES = ("background", "red", "green", "blue")
QUADRANTS = torch.zeros(32, 32, dtype=torch.long)
QUADRANTS[:16, 16:], QUADRANTS[16:, :16], QUADRANTS[16:, 16:] = 1, 2, 3


def make_bank(tmp_path, labels_of_image):
    """A bank of images split in four quadrant segments; a segment's prototype is its label's axis plus
    noise (three well-separated foreground clusters), its image quadrant painted in its label's colour."""
    rng = np.random.default_rng(0)
    (tmp_path / "JPEGImages").mkdir()
    rows = []
    for i, labels in enumerate(labels_of_image):
        image = np.zeros((32, 32, 3), np.uint8)
        for segment, label in enumerate(labels):
            image[(QUADRANTS == segment).numpy()] = [(90, 90, 90), (220, 30, 30), (30, 200, 30), (30, 30, 220)][label]
        Image.fromarray(image).save(tmp_path / "JPEGImages" / f"img_{i}.jpg")
        directions = torch.eye(8)[list(labels)] + 0.05 * torch.from_numpy(rng.normal(size=(4, 8))).float()
        rows.append((f"img_{i}", LabelledSegments(torch.arange(4), torch.tensor(labels), torch.full((4,), 256),
                                                  torch.nn.functional.normalize(directions, dim=1), QUADRANTS)))
    path = tmp_path / "bank.h5"
    write_bank(path, rows, 8, {"dataset": "synthetic"})
    return read_bank(path, expect={})


@pytest.fixture
def bank(tmp_path):
    return make_bank(tmp_path, [(0, 1 + i % 3, 1 + (i + 1) % 3, 0) for i in range(15)])


def test_tsne_canvas_places_tiles_in_distinct_cells_reproducibly(bank, tmp_path):
    layout = tsne_layout(bank, samples=50, perplexity=10, cells_per_side=5, seed=3)
    assert layout.sampled == 50 and 0 < len(layout.indices) <= 25
    assert len({tuple(cell) for cell in layout.cells}) == len(layout.cells)  # no two tiles overlap
    assert layout.cells.min() >= 0 and layout.cells.max() < 5
    again = tsne_layout(bank, samples=50, perplexity=10, cells_per_side=5, seed=3)
    assert np.array_equal(layout.indices, again.indices) and np.array_equal(layout.cells, again.cells)

    canvas = tsne_canvas(layout, bank, tmp_path, canvas_px=210, patch_px=40)
    assert canvas.shape == (210, 210, 3)
    row, column = layout.cells[0]
    found = bank.provenance([layout.indices[0]])[0]
    image = np.asarray(Image.open(tmp_path / "JPEGImages" / f"{found.image_id}.jpg").convert("RGB"))
    tile = canvas[5 + 40 * row:5 + 40 * (row + 1), 5 + 40 * column:5 + 40 * (column + 1)]
    assert np.array_equal(tile, segment_tile(image, found, 40))   # the grid is centred: 5 px margins
    tsne_figure(canvas, bank.labels[layout.indices].tolist(), NAMES, tmp_path / "tsne.png", "t-SNE")
    assert Image.open(tmp_path / "tsne.png").size[0] == 210


def test_tile_is_framed_in_the_label_colour(bank, tmp_path):
    found = bank.provenance([1])[0]
    tile = segment_tile(np.zeros((32, 32, 3), np.uint8), found, 40)
    assert tile.shape == (40, 40, 3) and (tile[0] == 255).all() and (tile[1, 1:-1] == (128, 0, 0)).all()


def test_finch_finds_the_clear_clusters(bank, tmp_path):
    clusters = finch_clusters(bank, coarse_clusters=3)
    labels = bank.labels[clusters.rows].numpy()
    assert (labels != 0).all() and len(clusters.rows) == 30
    assert clusters.counts[0] >= 3 and clusters.coarse.max() + 1 == 3
    classes = [set(labels[clusters.coarse == cluster]) for cluster in range(3)]
    assert sorted(map(sorted, classes)) == [[1], [2], [3]]  # each coarse cluster is exactly one class
    cfg = {"fine_clusters_shown": 2, "fine_samples": 3, "coarse_clusters": 3, "coarse_samples": 2}
    finch_figure(clusters, bank, tmp_path, cfg, 0, NAMES, tmp_path / "finch.png", "FINCH")
    assert Image.open(tmp_path / "finch.png").size[0] > 0


def test_bank_without_foreground_is_refused(tmp_path):
    bank = make_bank(tmp_path, [(0, 0, 0, 0)] * 3)
    with pytest.raises(DataError, match="bank.h5: the bank has 0 foreground prototypes"):
        finch_clusters(bank, coarse_clusters=3)
