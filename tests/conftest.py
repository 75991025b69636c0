import copy
from pathlib import Path

import pytest
import yaml

from segsort.data.tiny import generate_tiny_dataset
from segsort.stage import with_active_preset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def params_file() -> dict:
    """params.yaml as written (presets not applied): what a test writes out for a stage to read."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def params(params_file) -> dict:
    """params.yaml as the stages read it (the active preset's sections at the top level)."""
    return with_active_preset(params_file)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, params) -> Path:
    """A few tiny-dataset images (VOC layout), generated once per test session."""
    cfg = {**params["tiny"], "num_train": 4, "num_train_aug": 6, "num_val": 3, "num_test": 2}
    root = tmp_path_factory.mktemp("small") / "dataset"
    generate_tiny_dataset(root, cfg, seed=1)
    return root


@pytest.fixture
def small_params_file(params_file) -> dict:
    """params.yaml with schedules small enough for unit tests, as written."""
    p = copy.deepcopy(params_file)
    for schedule in p["presets"][p["dataset"]]["schedules"].values():
        schedule.update(steps=4, batch_size=2, crop=64)
    p["checkpoint_every"] = 2
    return p


@pytest.fixture
def small_params(small_params_file) -> dict:
    """The same, as the stages read it."""
    return with_active_preset(small_params_file)


@pytest.fixture(scope="session")
def real_samples(params_file) -> Path:
    """The real sample images the repository keeps (params `real_samples`, relative to the repository)."""
    path = REPO / params_file["real_samples"]
    assert (path / "bsds500").is_dir() and (path / "voc").is_dir(), f"{path}: the real sample images are missing"
    return path
