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
    """The real sample images (params `real_samples`, relative to the repository). A clone made elsewhere
    (CI clones this repository) finds them beside the repository it was cloned from. Missing samples fail
    the test loudly: the measures on real photographs must not silently drop out of CI."""
    import subprocess

    candidates = [REPO / params_file["real_samples"]]
    origin = subprocess.run(["git", "-C", str(REPO), "remote", "get-url", "origin"], capture_output=True, text=True)
    if origin.returncode == 0 and Path(origin.stdout.strip()).is_dir():
        candidates.append(Path(origin.stdout.strip()) / params_file["real_samples"])
    for path in candidates:
        if (path / "bsds500").is_dir() and (path / "voc").is_dir():
            return path.resolve()
    pytest.fail(f"the real sample images are missing: looked in {[str(c) for c in candidates]} "
                f"(params `real_samples`); they must sit beside the project as ../shared/real-samples")
