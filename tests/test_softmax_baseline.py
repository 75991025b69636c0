"""The softmax baseline through the stage entry points: a fresh classifier head on the ImageNet model,
training, and evaluation by the arg max of the class scores (no prototype bank)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from segsort.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # a softmax training and its evaluation

REPO = Path(__file__).resolve().parents[1]


def run_stage(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True)


def test_softmax_run_trains_a_classifier_head_and_is_evaluated_without_a_bank(small_dataset, small_params_file,
                                                                              tmp_path):
    params = {**small_params_file, "softmax_runs": {**small_params_file["softmax_runs"],
        "softmax_tiny": {"network": "lite0_pyramid", "split": "train", "init": "imagenet_lite0_pyramid", "schedule": "supervised"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    init, model = tmp_path / "imagenet.pt", tmp_path / "softmax_tiny" / "model.pt"
    assert run_stage([REPO / "stages/imagenet_model.py", "--network", "lite0_pyramid", "--out", init],
                     tmp_path).returncode == 0
    trained = run_stage([REPO / "stages/train.py", "--run", "softmax_tiny", "--init", init,
                         "--dataset-root", small_dataset, "--model-out", model, "--train-log", tmp_path / "log.csv",
                         "--tensorboard", tmp_path / "tensorboard"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "fresh softmax head (classifier.weight, classifier.bias)" in trained.stdout
    assert ("device: cuda" if torch.cuda.is_available() else "device: cpu") in trained.stdout
    assert load_checkpoint(model)["model_config"]["head"] == "softmax"

    metrics = tmp_path / "metrics.json"
    evaluated = run_stage([REPO / "stages/evaluate.py", "--model", model, "--dataset-root", small_dataset,
                           "--out", metrics], tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert ("device: cuda" if torch.cuda.is_available() else "device: cpu") in evaluated.stdout
    scores = json.loads(metrics.read_text())
    assert 0 <= scores["miou"] <= 1 and scores["num_images"] == 3 and "bank_size" not in scores

    with_bank = run_stage([REPO / "stages/evaluate.py", "--model", model, "--dataset-root", small_dataset,
                           "--bank", tmp_path / "bank.h5", "--out", tmp_path / "other.json"], tmp_path)
    assert with_bank.returncode == 1 and "a softmax model is evaluated without --bank" in with_bank.stderr

