import copy
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from pipeline_runs import BackgroundPipeline, start_local_cluster, stop_local_cluster
from segsort.bank import bank_identity
from segsort.checkpoint import save_model
from segsort.data import class_names
from segsort.data.tiny import generate_tiny_dataset
from segsort.data.voc import VOCLayout
from segsort.evaluate import build_bank
from segsort.models import build_model, network_config
from segsort.stage import setup_torch, with_active_preset
from workflow_dags import copy_tracked_files

REPO = Path(__file__).resolve().parents[1]
# The background run's stages and the other tests share two cores: threads that wait for work sleep instead
# of spinning on a core another process needs (OpenMP; the work each thread does, and so every number, is
# the same either way). Set before any test starts a process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_collection_modifyitems(items):
    """The tests that read the background run (pipeline_run) go last, so that every other test runs while
    it does instead of waiting behind one that waits for it."""
    items.sort(key=lambda item: "pipeline_run" in item.fixturenames)  # a stable sort: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def tiny_pipeline(request, tmp_path_factory):
    """pipeline_runs.BackgroundPipeline, started with the session when a collected test reads it (through
    the `pipeline_run` fixture), on the local SLURM cluster when it can start; None otherwise. The cluster
    is stopped at the end if this session started it."""
    if not any("pipeline_run" in item.fixturenames for item in request.session.items):
        yield None
        return
    started, problem = start_local_cluster()
    work = copy_tracked_files(tmp_path_factory.mktemp("pipeline"), skip=("reports/tiny/", "tests/"))  # makes its own
    pipeline = BackgroundPipeline(work, tmp_path_factory.mktemp("slurm"), problem)
    yield pipeline
    pipeline.stop()  # the tests that read it have waited for it: it has ended unless the session stopped early
    if started:
        stop_local_cluster()


@pytest.fixture(scope="session")
def pipeline_run(tiny_pipeline) -> Path:
    """The scratch checkout where the session's background run (pipeline_runs.py) made the tiny Table 3
    (seed 0)."""
    run = tiny_pipeline.result()
    assert run.result.returncode == 0, (run.work / "snakemake.out").read_text()[-5000:]
    return run.work


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
        if schedule["steps"]:  # a schedule of 0 steps keeps its model
            schedule.update(steps=4, batch_size=2, crop=64)
    p["checkpoint_every"] = 2
    return p


@pytest.fixture
def small_params(small_params_file) -> dict:
    """The same, as the stages read it."""
    return with_active_preset(small_params_file)


@pytest.fixture(scope="session")
def real_samples(params_file) -> Path:
    """The real sample images the repository keeps (params `real_samples_dir`, relative to the repository)."""
    path = REPO / params_file["real_samples_dir"]
    assert (path / "bsds500").is_dir() and (path / "voc").is_dir(), f"{path}: the real sample images are missing"
    return path


@pytest.fixture(scope="session")
def model_and_bank(tmp_path_factory, small_dataset, params):
    """An untrained Lite0 SegSort model and its bank of the small dataset's train images (model.pt, bank.h5, model),
    made with the stages' numerics whichever test asks first."""
    setup_torch(params)
    torch.manual_seed(0)
    names = class_names("tiny")
    model = build_model(network_config(params["networks"]["lite0_pyramid"], "segsort", 8, len(names))).eval()
    folder = tmp_path_factory.mktemp("model")
    save_model(folder / "model.pt", model, "untrained")
    attrs = {**bank_identity(folder / "model.pt", "embedding", None, "tiny"), "split": "train",
             "class_names": json.dumps(names), "dataset_root": str(small_dataset), "params": "{}"}
    count = build_bank(model, VOCLayout(small_dataset, "train", len(names)), "embedding", (3, 3), 3,
                       folder / "bank.h5", attrs)
    assert count > 0
    return folder / "model.pt", folder / "bank.h5", model


@pytest.fixture
def params_path(tmp_path, params_file):
    """params.yaml with a 3x3 k-means grid (quick inference), written for the CLI to read."""
    p = dict(params_file)
    p["presets"] = {**p["presets"], "tiny": {**p["presets"]["tiny"], "segsort": {
        **p["presets"]["tiny"]["segsort"], "grid": [3, 3]}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path
