"""Bad input gets a clear error naming the file, and leaves no half-written output."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from segsort.io import DataError, read_id_list, read_image, read_label_map, write_label_png
from segsort.stage import load_params, stage_device, stage_main
from segsort.train import NonFiniteLoss

REPO = Path(__file__).resolve().parents[1]


def test_corrupt_and_missing_images_are_named(tmp_path):
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg: cannot decode image"):
        read_image(corrupt)
    with pytest.raises(DataError, match="absent.jpg: image file is missing"):
        read_image(tmp_path / "absent.jpg")


@pytest.mark.parametrize("error", [DataError("a.png: cannot decode image"), NonFiniteLoss("non-finite loss at step 3")])
def test_the_projects_errors_exit_with_one_line(error, capsys):
    def main():
        raise error

    with pytest.raises(SystemExit) as exited:
        stage_main(main)()
    assert exited.value.code == 1 and capsys.readouterr().err == f"error: {error}\n"


def test_asking_for_a_gpu_without_one_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DataError, match="--device cuda: this machine has no CUDA device"):
        stage_device("cuda")


def test_a_bug_keeps_its_traceback():
    """torch raises RuntimeError for shape and device errors: those are bugs, not bad input."""
    def main():
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")

    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        stage_main(main)()


@pytest.mark.parametrize("content, reason", [
    ("text", "not a file torch.save writes, or a truncated one"),
    ("random bytes", "not a file torch.save writes, or a truncated one"),
    ("a tensor", "it holds a Tensor, not model_config and model"),
    ("pickled objects", "it holds Python objects besides tensors and plain values, and no pickled code is run"),
])
def test_a_model_that_is_not_a_checkpoint_is_one_line(tmp_path, capsys, content, reason):
    """--model given another file: one line naming it, not torch's advice to load it with weights_only=False."""
    import torch

    from segsort.cli import main as segsort_cli

    model = tmp_path / "model.pt"
    if content == "text":
        model.write_text("model: lite0_pyramid\n")
    elif content == "random bytes":
        model.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    else:
        torch.save(torch.zeros(3) if content == "a tensor" else {"model": np.zeros(3)}, model)
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "a.png")
    assert segsort_cli(["predict", str(tmp_path / "photos"), "--model", str(model), "--out", str(tmp_path / "out"),
                        "--params", str(REPO / "params.yaml"), "--device", "cpu"]) == 1
    assert capsys.readouterr().err == f"error: {model}: not a SegSort checkpoint ({reason})\n"


def test_label_map_size_and_range_are_checked(tmp_path):
    path = tmp_path / "mask.png"
    labels = np.zeros((4, 6), dtype=np.uint8)
    labels[0, 0] = 30
    write_label_png(path, labels)
    with pytest.raises(DataError, match=r"mask.png: label map is 6x4 \(WxH\) but the image is 5x4"):
        read_label_map(path, shape=(4, 5))
    with pytest.raises(DataError, match=r"mask.png: label ids \[30\] are out of range"):
        read_label_map(path, shape=(4, 6), num_classes=9)
    labels[0, 0] = 255  # void is always allowed
    write_label_png(path, labels)
    assert read_label_map(path, shape=(4, 6), num_classes=9)[0, 0] == 255
    Image.new("RGB", (6, 4)).save(path)
    with pytest.raises(DataError, match="must be a palette or grey PNG"):
        read_label_map(path)


def test_empty_list_is_an_error(tmp_path):
    (tmp_path / "train.txt").write_text("\n\n")
    with pytest.raises(DataError, match="train.txt: image list is empty"):
        read_id_list(tmp_path / "train.txt")


def run_stage(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.slow
def test_training_stage_stops_on_a_corrupt_image_and_writes_nothing(small_dataset, tmp_path, small_params_file):

    root = tmp_path / "dataset"
    shutil.copytree(small_dataset, root)
    first_id = (root / "ImageSets/Segmentation/train.txt").read_text().split()[1]
    (root / "JPEGImages" / f"{first_id}.jpg").write_bytes(b"garbage")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(small_params_file))
    init = tmp_path / "init.pt"
    assert run_stage([REPO / "stages/imagenet_model.py", "--network", "lite0_pyramid", "--out", init],
                     tmp_path).returncode == 0
    result = run_stage([REPO / "stages/train.py", "--run", "sup_train", "--init", init, "--dataset-root", root,
                        "--model-out", tmp_path / "out/model.pt", "--train-log", tmp_path / "out/log.csv",
                        "--tensorboard", tmp_path / "out/tensorboard"], tmp_path)
    assert result.returncode == 1
    assert f"error: {root}/JPEGImages/{first_id}.jpg: cannot decode image" in result.stderr
    assert not (tmp_path / "out" / "model.pt").exists() and not (tmp_path / "out" / "log.csv").exists()


@pytest.mark.slow
def test_missing_params_file_is_named(tmp_path):
    result = run_stage([REPO / "stages/imagenet_model.py", "--params", "nowhere.yaml", "--network", "lite0_pyramid",
                        "--out", "m.pt"], tmp_path)
    assert result.returncode == 1 and "nowhere.yaml: parameter file is missing" in result.stderr


def test_the_dataset_has_a_preset_whose_sections_stay_inside_it(tmp_path, params_file):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**params_file, "dataset": "voc2007"}))
    with pytest.raises(DataError, match=r"params.yaml: dataset: 'voc2007' is neither built in \(cityscapes, tiny, "
                                        r"voc2012\) nor declared in datasets"):
        load_params(path)
    own = {"mine": {"root": str(tmp_path), "preset": "tiny2"}}
    path.write_text(yaml.safe_dump({**params_file, "dataset": "mine", "datasets": own}))
    with pytest.raises(DataError, match=r"params.yaml: datasets.mine.preset: 'tiny2' is not in presets"):
        load_params(path)
    path.write_text(yaml.safe_dump({**params_file, "segsort": {"kappa": 5.0}}))
    with pytest.raises(DataError, match=r"params.yaml: segsort: unknown key"):
        load_params(path)
    assert load_params(REPO / "params.yaml")["schedules"] == params_file["presets"]["tiny"]["schedules"]
