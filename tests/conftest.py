import copy
from pathlib import Path

import pytest
import yaml

from segsort.data.tiny import generate_tiny_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, params) -> Path:
    """A few tiny-dataset images (VOC layout), generated once per test session."""
    cfg = {**params["tiny"], "num_train": 4, "num_train_aug": 6, "num_val": 3}
    root = tmp_path_factory.mktemp("small") / "dataset"
    generate_tiny_dataset(root, cfg, seed=1)
    return root


@pytest.fixture
def small_params(params) -> dict:
    """params.yaml with a schedule small enough for unit tests."""
    p = copy.deepcopy(params)
    for schedule in p["schedules"].values():
        schedule.update(steps=4, batch_size=2, crop=64)
    p["checkpoint_every"] = 2
    return p
