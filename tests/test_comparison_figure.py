"""The softmax vs SegSort figure stage (Figures 4 and 14) on untrained small models: one row per image of
every pair, and pairs or banks that do not belong together are refused."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from segsort.bank import bank_identity
from segsort.checkpoint import save_model
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.evaluate import build_bank
from segsort.models import build_model, network_config

pytestmark = pytest.mark.slow  # models and banks, then the figure stage

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory, small_dataset, params):
    """models/<name>/model.pt for a softmax model `soft` and SegSort models `sort` and `other`;
    banks/sort.h5 is the bank of `sort`, banks/other.h5 a copy of it."""
    torch.manual_seed(0)
    names = class_names("tiny")
    root = tmp_path_factory.mktemp("comparison")
    for name, head in [("soft", "softmax"), ("sort", "segsort"), ("other", "segsort")]:
        model = build_model(network_config(params["networks"]["lite0_pyramid"], head, 8, len(names))).eval()
        save_model(root / "models" / name / "model.pt", model, name)
        if name == "sort":
            attrs = {**bank_identity(root / "models/sort/model.pt", "embedding", None, "tiny"), "split": "train",
                     "class_names": json.dumps(names), "dataset_root": str(small_dataset), "params": "{}"}
            (root / "banks").mkdir()
            build_bank(model, VOCLayout(small_dataset, "train", len(names)), "embedding", (3, 3), 3,
                       root / "banks/sort.h5", attrs)
    shutil.copy(root / "banks/sort.h5", root / "banks/other.h5")
    return root


def run_figure(tmp_path, params_file, small_dataset, models, pairs, first_image=1):
    p = dict(params_file)
    p["comparison_figures"] = {"fig": {"pairs": pairs, "first_image": first_image, "images_per_pair": 2}}
    run = {"network": "lite0_pyramid", "split": "train", "init": "imagenet_lite0_pyramid", "schedule": "supervised"}
    p["softmax_runs"] = {**p["softmax_runs"], "soft": run}  # the figure's models are runs of params.yaml
    p["supervised_runs"] = {**p["supervised_runs"], "sort": run, "other": run}
    p["presets"] = {**p["presets"], "tiny": {**p["presets"]["tiny"], "segsort": {
        **p["presets"]["tiny"]["segsort"], "grid": [3, 3]}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    out = tmp_path / "figure.png"
    result = subprocess.run([sys.executable, str(REPO / "stages/comparison_figure.py"), "--figure", "fig",
                             "--models-dir", str(models / "models"), "--banks-dir", str(models / "banks"),
                             "--dataset-root", str(small_dataset), "--out", str(out)],
                            cwd=tmp_path, capture_output=True, text=True)
    return result, out


def panel_rows(figure: np.ndarray) -> int:
    """Panels met by a vertical line through the ground-truth column: runs of non-white pixels taller
    than any text line."""
    line = figure[:, int(0.4 * figure.shape[1]), :3].min(axis=1) < 250
    edges = np.flatnonzero(np.diff(np.concatenate([[0], line.astype(np.int8), [0]])))
    return int(np.sum(edges[1::2] - edges[::2] > 50))


def test_figure_has_one_row_per_image_of_every_pair(tmp_path, params_file, small_dataset, models):
    result, out = run_figure(tmp_path, params_file, small_dataset, models, [["soft", "sort"], ["soft", "sort"]])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 images, 2 pairs" in result.stdout
    assert panel_rows(np.asarray(Image.open(out))) == 4
    assert not list(tmp_path.glob(".figure.png*"))  # no temporary leftovers


def test_pair_in_the_wrong_order_is_refused(tmp_path, params_file, small_dataset, models):
    result, out = run_figure(tmp_path, params_file, small_dataset, models, [["sort", "soft"]])
    assert result.returncode == 1 and not out.exists()
    pair = f"pair [{models / 'models/sort/model.pt'}, {models / 'models/soft/model.pt'}]"
    assert (f"{pair}: expected a softmax model then a SegSort model, got a segsort model then a softmax model"
            in result.stderr)


def test_bank_of_another_model_is_refused(tmp_path, params_file, small_dataset, models):
    result, out = run_figure(tmp_path, params_file, small_dataset, models, [["soft", "other"]])
    assert result.returncode == 1 and not out.exists()
    assert "other.h5: bank model_sha256 is" in result.stderr


def test_images_past_the_split_are_refused(tmp_path, params_file, small_dataset, models):
    result, _ = run_figure(tmp_path, params_file, small_dataset, models, [["soft", "sort"]], first_image=2)
    assert result.returncode == 1 and "split val has 3 images, fig shows images 2..3" in result.stderr
