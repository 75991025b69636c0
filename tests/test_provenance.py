"""`segsort compare-run` names where a run parts from the committed one: the first stage whose outputs differ
from dvc.lock, and the first training step whose loss differs from the committed training log."""
import shutil
import subprocess
import sys

import pytest
import yaml

from segsort.provenance import compare_run, first_differing_step
from workflow_dags import commit, git_checkout, tool_env

TRAINING = "reports/tiny/training/sup_train.csv"
SMALL_TINY = {"num_train": 3, "num_train_aug": 3, "num_val": 3, "num_test": 1, "min_size": 96, "max_size": 128}


def test_the_first_differing_step_of_two_training_logs():
    committed = "step,loss,lr\n1,0.5,0.01\n2,0.25,0.009\n3,0.125,0.008\n"
    assert first_differing_step(committed, committed) is None
    assert first_differing_step(committed, committed.replace("0.25,", "0.2500001,")) == (2, "0.25", "0.2500001")
    assert first_differing_step(committed, "step,loss,lr\n1,0.5,0.01\n") == (2, "0.25", "(none)")


def snakemake(repo, *targets):
    result = subprocess.run(["snakemake", "--cores", "2", *targets], cwd=repo, env=tool_env(), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow  # a three-step training in a scratch checkout, twice
def test_a_run_that_parts_is_named_by_its_stage_and_step(tmp_path):
    repo = git_checkout(tmp_path / "repo", tiny=SMALL_TINY)
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["presets"]["tiny"]["schedules"]["supervised"].update(steps=3, batch_size=2, crop=64)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    snakemake(repo, TRAINING)
    committed = subprocess.run([sys.executable, "scripts/dvc_commit_built.py"], cwd=repo, env=tool_env(),
                               capture_output=True, text=True)
    assert committed.returncode == 0, committed.stdout + committed.stderr
    commit(repo, "the reference run")
    reference = tmp_path / "reference"
    shutil.copytree(repo, reference, ignore=shutil.ignore_patterns("data", ".snakemake", ".dvc"))
    assert compare_run(repo) is None and compare_run(repo, reference) is None  # the run is the reference

    # another learning rate: the same first loss (before any update), then the steps part
    params["presets"]["tiny"]["schedules"]["supervised"]["lr"] *= 2
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    snakemake(repo, TRAINING)
    for parting in (compare_run(repo), compare_run(repo, reference)):
        assert parting.stage == "train_supervised-sup_train" and parting.step == 2, parting
        assert set(parting.outputs) == {"data/tiny/models/sup_train/model.pt", TRAINING}
    result = subprocess.run([sys.executable, "-m", "segsort.cli", "compare-run"], cwd=repo, env=tool_env(),
                            capture_output=True, text=True)
    assert result.returncode == 1 and "parts at stage train_supervised-sup_train" in result.stdout, result

    # a changed input image: the dataset stage, before any training, is where it parts
    image = next((repo / "data/tiny/dataset/JPEGImages").glob("*.jpg"))
    image.write_bytes(image.read_bytes() + b"\0")
    parting = compare_run(repo, reference)
    assert parting.stage == "dataset" and parting.step is None, parting
