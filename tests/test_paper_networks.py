"""The paper's own networks (DeepLabv3+ on MobileNetV2 and ResNet-101, PSPNet on ResNet-101) through the real
stage commands. On the tiny dataset the DAG trains ImageNet EfficientNet-Lite stand-ins in their place
(params.yaml presets.tiny.stand_ins), so this is where they keep running: without the stand-ins, each trains a
few steps from random weights (torchvision's ImageNet weights need a download) with SegSort and with softmax,
and is evaluated, with a bank for SegSort and without one for softmax."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segsort.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # six trainings of the paper's networks

REPO = Path(__file__).resolve().parents[1]
RUNS = {  # the first stage of each row of Tables 1 and 9, on train_aug, as params.yaml defines them
    ("deeplabv3plus_mobilenetv2", "segsort"): "segsort_mobilenetv2_train_aug",
    ("deeplabv3plus_mobilenetv2", "softmax"): "softmax_mobilenetv2_train_aug",
    ("pspnet_resnet101", "segsort"): "segsort_pspnet_train_aug",
    ("pspnet_resnet101", "softmax"): "softmax_pspnet_train_aug",
    ("deeplabv3plus_resnet101", "segsort"): "segsort_deeplab_resnet101_train_aug",
    ("deeplabv3plus_resnet101", "softmax"): "softmax_deeplab_resnet101_train_aug",
}


def run_stage(args: list, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{args[0]}: {done.stderr[-2000:]}"
    return done


@pytest.mark.parametrize(("network", "head"), list(RUNS), ids=[f"{n}-{h}" for n, h in RUNS])
def test_paper_network_trains_and_is_evaluated_by_the_stages(network, head, small_dataset, small_params_file,
                                                             tmp_path):
    params = {**small_params_file, "presets": {**small_params_file["presets"]}}
    preset = params["presets"][params["dataset"]] = {**params["presets"][params["dataset"]], "stand_ins": {}}
    two_steps = {"lr": 2.0e-3, "steps": 2, "batch_size": 2, "crop": 64}
    preset["schedules"] = {**preset["schedules"], "supervised_large": two_steps, "supervised_large_pspnet": two_steps}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    run, init, model = RUNS[network, head], tmp_path / "imagenet.pt", tmp_path / "run" / "model.pt"
    run_stage([REPO / "stages/imagenet_model.py", "--network", network, "--out", init], tmp_path)
    run_stage([REPO / "stages/train.py", "--run", run, "--init", init, "--dataset-root", small_dataset,
               "--model-out", model, "--train-log", tmp_path / "log.csv", "--tensorboard", tmp_path / "tb"], tmp_path)
    config = load_checkpoint(model)["model_config"]
    assert (config["backbone"], config["decoder"], config["head"]) == (
        *(params["networks"][network][key] for key in ("backbone", "decoder")), head)
    bank = []
    if head == "segsort":
        run_stage([REPO / "stages/build_bank.py", "--model", model, "--dataset-root", small_dataset,
                   "--out", tmp_path / "bank.h5"], tmp_path)
        bank = ["--bank", tmp_path / "bank.h5"]
    run_stage([REPO / "stages/evaluate.py", "--model", model, *bank, "--dataset-root", small_dataset,
               "--out", tmp_path / "metrics.json"], tmp_path)
    scores = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 <= scores["miou"] <= 1 and scores["num_images"] == 3
    assert scores["network"] == {"deeplabv3plus_mobilenetv2": "DeepLabv3+ / MNV2", "pspnet_resnet101": "PSPNet / ResNet-101",
                                 "deeplabv3plus_resnet101": "DeepLabv3+ / ResNet-101"}[network]
