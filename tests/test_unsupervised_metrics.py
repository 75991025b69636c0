"""The PiCIE/STEGO protocols: Hungarian matching on worked confusion matrices, cluster mIoU and the linear
probe on synthetic features whose answer is known, determinism for a fixed seed, and the stage end to end."""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from segsort.checkpoint import save_model
from segsort.data import class_names
from segsort.data.tiny import generate_tiny_dataset
from segsort.data.voc import Sample
from segsort.io import IGNORE_LABEL
from segsort.models import build_model, network_config
from segsort.unsupervised_metrics import (cluster_miou, evaluate_protocols, fit_spherical_kmeans, hungarian_match,
                                          protocol_config, sample_labelled_pixels, train_linear_probe)

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES, DIM = 4, 8
SMALL = {"pixels_per_image": 150, "kmeans_iterations": 10, "probe_epochs": 40, "probe_lr": 0.05,
         "probe_batch_size": 256}


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on 2 shared cores, a second thread costs far more in hand-offs than it gives."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- Hungarian matching -------------------------------------------------------------------------------------

def test_permuted_diagonal_is_matched_back_perfectly():
    permutation = np.array([2, 0, 3, 1])              # cluster k holds the pixels of class permutation[k]
    clusters_by_class = np.zeros((4, 4), dtype=np.int64)
    clusters_by_class[np.arange(4), permutation] = [50, 7, 30, 12]
    assert hungarian_match(clusters_by_class).tolist() == permutation.tolist()
    scores = cluster_miou(clusters_by_class.T)        # cluster_miou takes (class x cluster)
    assert scores["miou"] == 1.0 and scores["pixel_accuracy"] == 1.0
    assert scores["per_class_iou"] == [1.0] * 4 and scores["mapping"] == permutation.tolist()


def test_hand_computed_3x3_beats_the_greedy_choice():
    # Greedy (take 9 first) matches 9 + 0 + 5 = 14 pixels; the optimum swaps clusters 0 and 1: 8 + 8 + 5 = 21.
    clusters_by_class = np.array([[9, 8, 0],
                                  [8, 0, 0],
                                  [0, 0, 5]])
    assert hungarian_match(clusters_by_class).tolist() == [1, 0, 2]
    # Relabelled (truth x prediction): [[8, 9, 0], [0, 8, 0], [0, 0, 5]] -> IoU 8/17, 8/17, 5/5.
    scores = cluster_miou(clusters_by_class.T)
    assert scores["per_class_iou"] == pytest.approx([8 / 17, 8 / 17, 1.0])
    assert scores["miou"] == pytest.approx((16 / 17 + 1) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(21 / 30)


def test_surplus_clusters_stay_unmatched():
    mapping = hungarian_match(np.array([[1, 0], [0, 9], [6, 0]]))  # 3 clusters, 2 classes
    assert mapping.tolist() == [-1, 1, 0]


# --- synthetic features: a fake model whose features we control ---------------------------------------------

class DirectionModel(nn.Module):
    """Class c's pixels (read from the image's red channel) get direction e_c, tilted along e_{D-1} by the
    green channel, so the classes are well separated but not identical points."""

    def __init__(self):
        super().__init__()
        self.directions = nn.Parameter(torch.eye(DIM)[:NUM_CLASSES], requires_grad=False)

    def forward(self, x):
        features = self.directions[x[:, 0].long()].permute(0, 3, 1, 2)
        tilt = torch.zeros(DIM)
        tilt[-1] = 1.0
        return features + 0.3 * (x[:, 1:2] / 255 - 0.5) * tilt[None, :, None, None]

    backbone_features = forward


class FakeSplit:
    """The part of VOCLayout the protocols use: split, num_classes, len and Samples."""

    def __init__(self, split: str, num_images: int, seed: int):
        rng = np.random.default_rng(seed)
        self.split, self.num_classes, self.samples = split, NUM_CLASSES, []
        for i in range(num_images):
            classes = rng.permutation(NUM_CLASSES)  # every class in every image, in quadrants
            truth = np.kron(classes.reshape(2, 2), np.ones((12, 16), dtype=np.int64)).astype(np.uint8)
            labels = truth.copy()
            labels[11:13] = IGNORE_LABEL            # a void band, as along VOC object borders
            image = np.stack([truth, rng.integers(0, 256, truth.shape), np.zeros_like(truth)], -1).astype(np.uint8)
            self.samples.append(Sample(f"{split}{i}", image, labels, None))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


def test_sampling_skips_ignore_pixels_and_is_seeded():
    labels = np.full((6, 5), IGNORE_LABEL, dtype=np.uint8)
    labels[2, :] = [0, 1, 2, 3, 0]
    features = torch.arange(3 * 30, dtype=torch.float32).reshape(3, 6, 5)
    f, lab = sample_labelled_pixels(features, labels, 3, torch.Generator().manual_seed(0))
    assert f.shape == (3, 3) and (lab != IGNORE_LABEL).all()
    flat_index = f[:, 0].long()                                # channel 0 holds each pixel's flat index
    assert set(flat_index.tolist()) <= set(range(10, 15))      # row 2: the only labelled pixels
    assert lab.tolist() == labels.reshape(-1)[flat_index.numpy()].tolist()  # features and labels stay paired
    all_f, all_lab = sample_labelled_pixels(features, labels, 100, torch.Generator().manual_seed(0))
    assert sorted(all_f[:, 0].long().tolist()) == list(range(10, 15)) and len(all_lab) == 5
    again, _ = sample_labelled_pixels(features, labels, 3, torch.Generator().manual_seed(0))
    assert torch.equal(f, again)


def test_kmeans_finds_well_separated_directions():
    centres = torch.nn.functional.normalize(torch.randn(5, 16, generator=torch.Generator().manual_seed(3)), dim=1)
    points = torch.nn.functional.normalize(
        centres.repeat_interleave(40, 0) + 0.05 * torch.randn(200, 16, generator=torch.Generator().manual_seed(4)),
        dim=1)
    found = fit_spherical_kmeans(points, 5, 10, torch.Generator().manual_seed(0))
    assert (found @ centres.T).max(dim=0).values.min() > 0.99  # every true centre has a centroid on it


def test_both_protocols_are_perfect_on_separable_features_and_deterministic():
    model = DirectionModel()
    train, val = FakeSplit("train", 6, seed=1), FakeSplit("val", 3, seed=2)
    result = evaluate_protocols(model, train, val, "embedding", SMALL, seed=0)
    assert result["cluster"]["miou"] == 1.0 and result["cluster"]["pixel_accuracy"] == 1.0
    assert result["probe"]["miou"] == 1.0 and result["probe"]["pixel_accuracy"] == 1.0
    assert result["num_images"] == 3 and result["num_train_images"] == 6
    assert evaluate_protocols(model, train, val, "backbone", SMALL, seed=0) == result


def test_linear_probe_learns_a_linearly_separable_problem_deterministically():
    generator = torch.Generator().manual_seed(0)
    truth = torch.randn(3, 6, generator=generator)        # labels by arg max of a hidden linear map
    features = torch.nn.functional.normalize(torch.randn(4000, 6, generator=generator), dim=1)
    logits = features @ truth.T
    top2 = logits.topk(2, dim=1).values
    keep = top2[:, 0] - top2[:, 1] > 0.2                   # a margin, so the problem is cleanly separable
    features, labels = features[keep], logits[keep].argmax(dim=1)
    train, test = slice(0, len(labels) // 2), slice(len(labels) // 2, None)
    probe = train_linear_probe(features[train], labels[train], 3, epochs=60, lr=0.05, batch_size=128, seed=7)
    with torch.no_grad():
        accuracy = (probe(features[test]).argmax(dim=1) == labels[test]).float().mean().item()
    assert accuracy > 0.97
    same = train_linear_probe(features[train], labels[train], 3, epochs=60, lr=0.05, batch_size=128, seed=7)
    assert torch.equal(probe.weight, same.weight) and torch.equal(probe.bias, same.bias)
    other = train_linear_probe(features[train], labels[train], 3, epochs=60, lr=0.05, batch_size=128, seed=8)
    assert not torch.equal(probe.weight, other.weight)  # the seed drives the mini-batch order


def test_missing_or_unknown_setting_is_refused(params):
    settings = params["evaluation"]["unsupervised_protocols"]
    assert protocol_config(settings) == settings
    with pytest.raises(ValueError, match="missing keys \\['probe_lr'\\], unknown keys \\['probe_lrr'\\]"):
        protocol_config({**{k: v for k, v in settings.items() if k != "probe_lr"}, "probe_lrr": 0.1})


# --- the stage ----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_stage_writes_both_protocols(small_params_file, params, tmp_path):
    # Fewer and smaller images than the shared small_dataset: the network's forward passes are the cost.
    dataset = tmp_path / "dataset"
    generate_tiny_dataset(dataset, {**params["tiny"], "num_train": 2, "num_train_aug": 2, "num_val": 2, "num_test": 0,
                                    "min_size": 64, "max_size": 96}, seed=1)
    names = class_names(params["dataset"])
    model = build_model(network_config(params["networks"]["lite0_pyramid"], "segsort", params["embedding_dim"],
                                       len(names)))
    save_model(tmp_path / "untrained" / "model.pt", model, "untrained")
    # One thread: on 2 shared cores a second one slows these small convolutions down (5 s instead of 12 s).
    p = {**small_params_file, "threads": 1, "evaluation": {**small_params_file["evaluation"],
                                             "unsupervised_protocols": {**SMALL, "probe_epochs": 5}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    out = tmp_path / "reports" / "untrained.json"
    command = [sys.executable, str(REPO / "stages/unsupervised_metrics.py"), "--model", "untrained/model.pt",
               "--dataset-root", str(dataset), "--out", str(out), "--log", "log.txt"]
    result = subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert metrics["model"] == "untrained" and metrics["num_images"] == 2 and metrics["num_train_images"] == 2
    for protocol in ("cluster", "probe"):
        assert 0.0 <= metrics[f"{protocol}_miou"] <= 1.0 and 0.0 <= metrics[f"{protocol}_pixel_accuracy"] <= 1.0
        assert sorted(metrics[f"{protocol}_per_class_iou"]) == sorted(names)
    assert sorted(metrics["cluster_to_class"].values()) == sorted(names)  # one-to-one
    assert "linear probe mIoU" in (tmp_path / "log.txt").read_text()



def test_stage_refuses_pseudo_segments(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["unsupervised_metrics.py", "--model", "m.pt", "--dataset-root", "d",
                                      "--segments", "nowhere", "--out", str(tmp_path / "out.json")])
    with pytest.raises(SystemExit) as exit_info:  # in-process: a second interpreter would cost seconds
        runpy.run_path(str(REPO / "stages/unsupervised_metrics.py"), run_name="__main__")
    assert exit_info.value.code == 1 and "--segments has no use here" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
