"""`segsort predict` and `segsort explain` with a model and its bank (untrained weights: the plumbing and
the provenance are under test, not the accuracy); evaluation of a multi-scale config end to end."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from segsort.bank import read_bank
from segsort.checkpoint import save_model
from segsort.cli import main as segsort_cli
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.evaluate import evaluate, evaluate_sweep
from segsort.inference import InferenceConfig, segsort_votes
from segsort.models import build_model, network_config

pytestmark = pytest.mark.slow  # banks of small models, then the CLI on them


def test_predict_labels_a_folder_and_names_the_corrupt_file(tmp_path, small_dataset, model_and_bank,
                                                             params_path, capsys):
    model_path, bank_path, _ = model_and_bank
    photos = tmp_path / "photos"
    photos.mkdir()
    for image_id in VOCLayout(small_dataset, "val", 1, with_labels=False).ids[:2]:
        (photos / f"{image_id}.jpg").write_bytes((small_dataset / "JPEGImages" / f"{image_id}.jpg").read_bytes())
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a jpeg")
    out = tmp_path / "labelled"
    code = segsort_cli(["predict", str(photos), "--model", str(model_path), "--bank", str(bank_path),
                        "--out", str(out), "--params", str(params_path), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.jpg: cannot decode image" in captured.err
    assert "2 of 3 images labelled" in captured.out
    good = sorted(p.stem for p in photos.glob("*.jpg") if p.name != "broken.jpg")
    assert sorted(p.stem for p in out.glob("*.png")) == good
    for stem in good:
        labels = np.asarray(Image.open(out / f"{stem}.png"))
        image = Image.open(photos / f"{stem}.jpg")
        assert labels.shape == (image.height, image.width) and labels.max() < len(class_names("tiny"))
        assert Image.open(out / f"{stem}_overlay.jpg").size == image.size
    assert not list(out.glob(".*"))  # no temporary leftovers


def test_predict_refuses_a_bank_of_another_model(tmp_path, model_and_bank, params_path, capsys, params):
    _, bank_path, _ = model_and_bank
    other = build_model(network_config(params["networks"]["lite0_pyramid"], "segsort", 8, len(class_names("tiny"))))
    save_model(tmp_path / "other.pt", other, "other")
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "photos" / "a.png")
    code = segsort_cli(["predict", str(tmp_path / "photos"), "--model", str(tmp_path / "other.pt"),
                        "--bank", str(bank_path), "--out", str(tmp_path / "out"), "--params", str(params_path)])
    assert code == 1 and "bank model_sha256 is" in capsys.readouterr().err


def test_explain_draws_each_segment_with_its_retrieved_training_segments(tmp_path, small_dataset,
                                                                        model_and_bank, params_path):
    model_path, bank_path, _ = model_and_bank
    image = small_dataset / "JPEGImages" / f"{VOCLayout(small_dataset, 'val', 1, with_labels=False).ids[0]}.jpg"
    out = tmp_path / "why.png"
    code = segsort_cli(["explain", str(image), "--model", str(model_path), "--bank", str(bank_path),
                        "--out", str(out), "--params", str(params_path), "--segments", "3", "--neighbours", "4"])
    assert code == 0
    figure = np.asarray(Image.open(out))
    assert figure.shape[0] > 300 and figure.shape[1] > 500 and figure.std() > 10


def test_explain_on_a_bank_damaged_in_its_middle_says_so_in_one_line(tmp_path, small_dataset, model_and_bank,
                                                                       params_path, capsys):
    """predict reads the prototypes and labels only and still works; explain reads the provenance too, and
    names the bank and the column it cannot read instead of raising h5py's OSError."""
    from test_bank import corrupt_column

    model_path, bank_path, _ = model_and_bank
    damaged = tmp_path / "bank.h5"
    damaged.write_bytes(bank_path.read_bytes())
    corrupt_column(damaged, "masks")
    image = small_dataset / "JPEGImages" / f"{VOCLayout(small_dataset, 'val', 1, with_labels=False).ids[0]}.jpg"
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / image.name).write_bytes(image.read_bytes())
    common = ["--model", str(model_path), "--bank", str(damaged), "--params", str(params_path), "--device", "cpu"]
    assert segsort_cli(["predict", str(tmp_path / "photos"), "--out", str(tmp_path / "labelled"), *common]) == 0
    capsys.readouterr()
    assert segsort_cli(["explain", str(image), "--out", str(tmp_path / "why.png"), *common]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and "Traceback" not in err, err
    assert err.startswith(f"error: {damaged}: cannot read prototype bank column masks"), err
    assert not (tmp_path / "why.png").exists()


def test_multi_scale_votes_add_up_over_views_and_single_scale_matches_evaluation(small_dataset, model_and_bank):
    _, bank_path, model = model_and_bank
    bank = read_bank(bank_path, expect={})
    num_classes = len(class_names("tiny"))
    sample = VOCLayout(small_dataset, "val", num_classes)[0]
    config = InferenceConfig(grid=(3, 3), kmeans_iterations=3, knn_k=5, scales=(0.5, 1.25), flip=True)
    votes = segsort_votes(model, sample.image, bank.prototypes, bank.labels, config, num_classes)
    assert votes.shape == (num_classes, *sample.image.shape[:2])
    assert torch.all(votes.sum(0) == 5 * 4)  # every pixel got k votes from each of the 4 views
    one_image = VOCLayout(small_dataset, "val", num_classes)
    one_image.ids = one_image.ids[:1]
    scores = evaluate(model, one_image, bank, "embedding", config)
    assert 0 <= scores["miou"] <= 1 and 0 <= scores["boundary_f"] <= 1
    assert set(scores) >= {"per_class_iou", "per_class_boundary", "boundary_precision", "boundary_recall"}


def test_the_sweep_scores_each_setting_as_its_own_evaluation(small_dataset, model_and_bank):
    """The inference sweep runs the network once per view and k-means once per number of iterations, for
    all k: each setting's scores must still be those of evaluating with that setting alone."""
    _, bank_path, model = model_and_bank
    bank = read_bank(bank_path, expect={})
    num_classes = len(class_names("tiny"))
    # the untrained model's bank votes background for every k: labels in turn make each k's votes its own
    bank = replace(bank, labels=torch.arange(len(bank.labels)) % num_classes)
    images = VOCLayout(small_dataset, "val", num_classes)
    images.ids = images.ids[:2]
    base = InferenceConfig(grid=(3, 3), kmeans_iterations=1, knn_k=1, scales=(0.75, 1.0), flip=True)
    configs = [replace(base, kmeans_iterations=iterations, knn_k=k) for iterations in (1, 4) for k in (1, 3, 7)]
    swept = evaluate_sweep(model, images, bank, "embedding", configs)
    assert swept == [evaluate(model, images, bank, "embedding", config) for config in configs]
    assert len({json.dumps(scores, sort_keys=True) for scores in swept}) > 1  # the settings differ


def run_predict(photos, out, model_and_bank, params_path, *extra):
    model_path, bank_path, _ = model_and_bank
    return segsort_cli(["predict", str(photos), "--model", str(model_path), "--bank", str(bank_path),
                        "--out", str(out), "--params", str(params_path), *extra])


def test_predict_keeps_outputs_of_images_with_one_stem_apart(tmp_path, model_and_bank, params_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(photos / "x.jpg")
    Image.fromarray(rng.integers(0, 255, (30, 44, 3), dtype=np.uint8)).save(photos / "x.png")
    out = tmp_path / "out"
    assert run_predict(photos, out, model_and_bank, params_path, "--device", "cpu") == 0
    assert "2 of 2 images labelled" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["x_jpg.png", "x_jpg_overlay.jpg", "x_png.png", "x_png_overlay.jpg"]
    assert Image.open(out / "x_jpg.png").size == (56, 40) and Image.open(out / "x_png.png").size == (44, 30)


def test_a_16_bit_image_is_read_as_its_values_not_as_white(tmp_path, model_and_bank, params_path, capsys):
    from segsort.io import read_image
    gradient = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(gradient).save(photos / "deep.png")
    assert Image.open(photos / "deep.png").mode.startswith("I")
    image = read_image(photos / "deep.png")
    assert image.shape == (32, 64, 3) and image[0, 0, 0] == 0 and image[0, -1, 0] == 255
    assert abs(int(image[0, 32, 0]) - 132) <= 2  # 32/63 of the way, not clipped to 255
    assert run_predict(photos, tmp_path / "out", model_and_bank, params_path, "--device", "cpu") == 0
    assert np.asarray(Image.open(tmp_path / "out" / "deep.png")).shape == (32, 64)


def test_a_large_image_is_labelled_at_the_configured_longest_side(tmp_path, model_and_bank, params_path,
                                                                  monkeypatch):
    """`inference.max_side` bounds the pixels the network and k-means see; the labels come back at full size."""
    params = yaml.safe_load(params_path.read_text())
    params["presets"]["tiny"]["inference"]["max_side"] = 64
    params_path.write_text(yaml.safe_dump(params))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (150, 300, 3), dtype=np.uint8)).save(photos / "big.jpg")
    _, _, model = model_and_bank
    seen = []
    hook = model.register_forward_pre_hook(lambda module, inputs: seen.append(tuple(inputs[0].shape[2:])))
    monkeypatch.setattr("segsort.cli.load_model", lambda path: model)  # the hooked model, not a fresh copy
    try:
        assert run_predict(photos, tmp_path / "out", model_and_bank, params_path, "--device", "cpu") == 0
    finally:
        hook.remove()
    assert seen and max(max(shape) for shape in seen) <= 64
    assert np.asarray(Image.open(tmp_path / "out" / "big.png")).shape == (150, 300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_predict_on_a_missing_gpu_says_so_in_one_line(tmp_path, model_and_bank, params_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30)).save(photos / "a.jpg")
    assert run_predict(photos, tmp_path / "out", model_and_bank, params_path, "--device", "cuda") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0], err


def test_predict_labels_a_gif_and_names_the_files_it_skips(tmp_path, model_and_bank, params_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(photos / "a.png")
    Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).convert("P").save(photos / "b.gif")
    (photos / "notes.txt").write_text("not a photo")
    assert run_predict(photos, tmp_path / "out", model_and_bank, params_path, "--device", "cpu") == 0
    captured = capsys.readouterr()
    assert "2 of 2 images labelled" in captured.out
    assert [line for line in captured.err.splitlines() if "skipped" in line] == \
        ["note: 1 file(s) skipped, not .jpg/.jpeg/.png/.bmp/.tif/.tiff/.webp/.gif images: notes.txt"]
    assert (tmp_path / "out" / "b.png").is_file()
