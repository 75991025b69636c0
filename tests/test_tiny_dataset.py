"""Tests of the embedded tiny dataset generator (segsort/data/tiny.py)."""
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from segsort.data.tiny import TINY_CLASSES, describe_tiny_dataset, generate_tiny_dataset
from segsort.io import DataError

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
SMALL_CFG = {"num_train": 4, "num_train_aug": 12, "num_val": 6, "num_test": 3, "min_size": 72, "max_size": 120,
             "min_objects": 2, "max_objects": 4, "void_width": 3}


def read_split(root: Path, split: str) -> list[str]:
    return (root / "ImageSets/Segmentation" / f"{split}.txt").read_text().split()


def read_pair(root: Path, image_id: str) -> tuple[Image.Image, Image.Image]:
    with Image.open(root / "JPEGImages" / f"{image_id}.jpg") as image:
        image.load()
    with Image.open(root / "SegmentationClass" / f"{image_id}.png") as mask:
        mask.load()
    return image, mask


def all_ids(root: Path) -> list[str]:
    return read_split(root, "train_aug") + read_split(root, "val")


def foreground_components(labels: np.ndarray, min_pixels: int = 1) -> list[np.ndarray]:
    """Connected regions of non-void foreground (the void band separates touching objects)."""
    components, count = ndimage.label((labels > 0) & (labels != 255))
    regions = [components == k for k in range(1, count + 1)]
    return [region for region in regions if region.sum() >= min_pixels]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "tiny"
    generate_tiny_dataset(out, SMALL_CFG, seed=3)
    return out


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> tuple[Path, dict]:
    cfg = yaml.safe_load(PARAMS.read_text())["tiny"]
    out = tmp_path_factory.mktemp("default") / "tiny"
    generate_tiny_dataset(out, cfg, seed=0)
    return out, cfg


def test_class_list():
    assert TINY_CLASSES[0] == "background"
    assert len(TINY_CLASSES) >= 7
    assert len(set(TINY_CLASSES)) == len(TINY_CLASSES)
    description = describe_tiny_dataset()
    for name in TINY_CLASSES:
        assert f"`{name}`" in description
    page = (PARAMS.parent / "docs" / "tiny_dataset.md").read_text()
    assert description in page, "docs/tiny_dataset.md's class list is out of date: paste describe_tiny_dataset()"


def test_layout_and_lists(small):
    assert sorted(p.name for p in small.parent.iterdir()) == ["tiny"]  # no temporary directory left
    train, train_aug, val, test = (read_split(small, s) for s in ("train", "train_aug", "val", "test"))
    assert len(train) == SMALL_CFG["num_train"]
    assert len(train_aug) == SMALL_CFG["num_train_aug"]
    assert len(val) == SMALL_CFG["num_val"]
    assert len(test) == SMALL_CFG["num_test"]
    assert train == train_aug[:len(train)]
    assert len(set(train_aug + val + test)) == len(train_aug + val + test)  # disjoint splits
    ids = set(train_aug + val + test)
    assert {p.stem for p in (small / "JPEGImages").iterdir()} == ids
    assert {p.stem for p in (small / "SegmentationClass").iterdir()} == ids


def test_images_and_masks(small):
    for image_id in all_ids(small):
        image, mask = read_pair(small, image_id)
        assert image.format == "JPEG" and image.mode == "RGB"
        assert mask.format == "PNG" and mask.mode == "P"
        assert image.size == mask.size
        assert all(SMALL_CFG["min_size"] <= side <= SMALL_CFG["max_size"] for side in image.size)
        values = set(np.unique(np.asarray(mask)).tolist())
        assert values <= set(range(len(TINY_CLASSES))) | {255}


def test_void_band_separates_classes(small):
    width = SMALL_CFG["void_width"]
    for image_id in all_ids(small):
        labels = np.asarray(read_pair(small, image_id)[1])
        void = labels == 255
        assert void.any(), f"{image_id} has no void band"
        # every change of class between 4-neighbours goes through the void band
        for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
            both_valid = (a != 255) & (b != 255)
            assert not np.any(both_valid & (a != b)), f"{image_id}: classes touch without void"
        # the band is thin: void pixels lie within void_width of a labelled pixel (up to a few at
        # junctions and at slivers of occluded objects thinner than the band)
        distance = ndimage.distance_transform_cdt(void, metric="chessboard")[void]
        assert np.mean(distance <= width) >= 0.98, f"{image_id}: void band too wide"
        assert distance.max() <= 2 * width, f"{image_id}: void blob"
        # every object is bordered by void
        for region in foreground_components(labels):
            assert void[ndimage.binary_dilation(region)].any(), f"{image_id}: object without border"


def test_void_band_width(small):
    """Where a row crosses from one class to another, the void run between them is at least
    void_width wide, and exactly void_width where the border is (near) vertical."""
    widths = []
    for image_id in all_ids(small):
        for row in np.asarray(read_pair(small, image_id)[1]):
            valid = np.flatnonzero(row != 255)
            for left, right in zip(valid[:-1], valid[1:]):
                if right - left > 1 and row[left] != row[right]:
                    widths.append(right - left - 1)
    assert len(widths) > 100
    assert min(widths) == SMALL_CFG["void_width"]
    assert np.median(widths) < 2 * SMALL_CFG["void_width"]


def test_same_seed_same_bytes_other_seed_differs(small, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    generate_tiny_dataset(again, SMALL_CFG, seed=3)
    generate_tiny_dataset(other, SMALL_CFG, seed=4)
    files = sorted(p.relative_to(small) for p in small.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (small / rel).read_bytes() == (again / rel).read_bytes(), rel
    differing = [rel for rel in files if rel.suffix in (".jpg", ".png")
                 and (small / rel).read_bytes() != (other / rel).read_bytes()]
    assert len(differing) == len([rel for rel in files if rel.suffix in (".jpg", ".png")])


def test_more_test_images_leave_the_other_splits_unchanged(small, tmp_path):
    """Each image has its own seed: growing the test split must not change the images models learn from."""
    fewer = tmp_path / "fewer"
    generate_tiny_dataset(fewer, dict(SMALL_CFG, num_test=1), seed=3)
    for image_id in read_split(small, "train_aug") + read_split(small, "val"):
        for rel in (f"JPEGImages/{image_id}.jpg", f"SegmentationClass/{image_id}.png"):
            assert (small / rel).read_bytes() == (fewer / rel).read_bytes(), rel
    assert read_split(fewer, "test") == read_split(small, "test")[:1]


def test_regeneration_replaces_its_earlier_output_but_never_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "tiny"
    cfg = dict(SMALL_CFG, num_train=1, num_train_aug=2, num_val=1)
    generate_tiny_dataset(out, cfg, seed=0)
    (out / "stale.txt").write_text("old")
    generate_tiny_dataset(out, cfg, seed=0)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    with pytest.raises(DataError, match="did not write"):
        generate_tiny_dataset(mine, cfg, seed=0)
    assert [p.name for p in mine.iterdir()] == ["keep.txt"] and (mine / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_default_config_content(default):
    root, cfg = default
    assert len(read_split(root, "train_aug")) == cfg["num_train_aug"]
    classes_seen, objects, foreground = set(), [], []
    for image_id in read_split(root, "train_aug"):
        labels = np.asarray(read_pair(root, image_id)[1])
        classes_seen |= set(np.unique(labels).tolist())
        objects.append(len(foreground_components(labels, min_pixels=20)))
        foreground.append(np.mean((labels > 0) & (labels != 255)))
    assert set(range(1, len(TINY_CLASSES))) <= classes_seen, "a foreground class never appears"
    assert np.mean(objects) >= 2
    assert min(objects) >= 1
    assert 0.1 <= np.mean(foreground) <= 0.6
