"""`segsort bank add`: a bank grown by a folder's labelled segments, new classes included, labels them in
`segsort predict` and `segsort explain`; every refusal is one line and leaves the bank byte-for-byte as it
was, and so does an interrupted addition; a built bank stays deterministic (its additions hold no time)."""
import json
import shutil
from datetime import datetime, timedelta, timezone

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import segsort.grow
from segsort.bank import SCHEMA_VERSION, read_bank
from segsort.checkpoint import file_sha256, save_model
from segsort.cli import main as segsort_cli
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.evaluate import build_bank
from segsort.grow import add_folder

pytestmark = pytest.mark.slow  # a small model and its bank, grown through the CLI

NEW = "gizmo"


@pytest.fixture
def all_votes_params(tmp_path, params_file):
    """params.yaml whose kNN takes every prototype of the bank as a neighbour (k above any bank here): each
    segment is labelled with the bank's most common class, whatever the (untrained, near constant)
    embedding; one scale, and the k-means the fixture bank was made with (3x3 grid, 3 iterations)."""
    p = dict(params_file)
    preset = p["presets"]["tiny"]
    p["presets"] = {**p["presets"], "tiny": {**preset, "segsort": {**preset["segsort"], "grid": [3, 3]},
                                             "inference": {**preset["inference"], "kmeans_iterations": 3,
                                                           "knn_k": 100000, "scales": [1.0], "flip": False}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


@pytest.fixture
def bank_copy(tmp_path, model_and_bank):
    """A copy of the session's bank, in a folder of its own, to grow."""
    (tmp_path / "banks").mkdir()
    return shutil.copyfile(model_and_bank[1], tmp_path / "banks" / "bank.h5")


def stripes(height: int, width: int, period: int) -> np.ndarray:
    ys, xs = np.mgrid[:height, :width]
    on = ((xs + ys) // period) % 2 == 0
    return np.where(on[..., None], [230, 20, 200], [20, 200, 40]).astype(np.uint8)


def gizmo_folder(root, count: int = 6):
    """A dataset of your own (PNG images, grey masks) whose classes are background (0) and gizmo (1): g1 and
    the others are gizmo everywhere; g2 has background on its left, a void row and gizmo on the rest."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for index in [1] + list(range(3, count + 1)):
        Image.fromarray(stripes(32, 40, 3 + index)).save(root / "JPEGImages" / f"g{index}.png")
        Image.fromarray(np.ones((32, 40), np.uint8), mode="L").save(root / "SegmentationClass" / f"g{index}.png")
    Image.fromarray(stripes(36, 48, 5)).save(root / "JPEGImages" / "g2.png")
    mask = np.ones((36, 48), np.uint8)
    mask[:, :12], mask[20] = 0, 255
    Image.fromarray(mask, mode="L").save(root / "SegmentationClass" / "g2.png")
    return root


def run_cli(args, capfd):
    code = segsort_cli(args)
    out, err = capfd.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def test_a_new_class_is_added_and_labelled_by_predict_and_explain(tmp_path, model_and_bank, bank_copy,
                                                                  all_votes_params, capfd):
    model_path, bank_path, _ = model_and_bank
    folder = gizmo_folder(tmp_path / "more")
    tiny = list(class_names("tiny"))
    before = read_bank(bank_copy, expect={})
    started = datetime.now(timezone.utc)
    code, out, err = run_cli(["bank", "add", str(folder), "--bank", str(bank_copy), "--model", str(model_path),
                              "--classes", f"background,{NEW}", "--params", str(all_votes_params), "--device", "cpu"], capfd)
    assert code == 0, err
    assert f"from {folder} added; new classes: {NEW}" in out
    grown = read_bank(bank_copy, expect={"model_sha256": file_sha256(model_path)})
    new_id = len(tiny)
    assert json.loads(grown.attrs["class_names"]) == tiny + [NEW] and grown.attrs["num_classes"] == new_id + 1
    assert grown.attrs["schema_version"] == SCHEMA_VERSION == 4
    (addition,) = json.loads(grown.attrs["additions"])
    added = len(grown) - len(before)
    assert addition["source"] == str(folder.resolve()) and addition["images"] == 6
    assert addition["segments"] == added > 0 and addition["rows"] == [len(before), len(grown)]
    assert addition["model_sha256"] == file_sha256(model_path) and addition["classes_added"] == [NEW]
    when = datetime.fromisoformat(addition["time"])
    assert when.utcoffset() == timedelta(0) and started - timedelta(seconds=1) <= when <= datetime.now(timezone.utc)
    # the bank's own rows as they were; the added ones labelled by name: background 0, gizmo the new id
    assert torch.equal(grown.prototypes[:len(before)], before.prototypes)
    assert torch.equal(grown.labels[:len(before)], before.labels)
    assert set(grown.labels[len(before):].tolist()) == {0, new_id}
    found = grown.provenance(range(len(before) - 1, len(grown)))
    assert found[0].source is None and {p.source for p in found[1:]} == {folder.resolve()}
    assert {p.image_id for p in found[1:]} == {f"g{index}" for index in range(1, 7)}
    # the grown bank holds more gizmo than any other class, and every prototype votes: gizmo must win
    assert (grown.labels == new_id).sum() > (grown.labels != new_id).sum()
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(folder / "JPEGImages" / "g1.png", photos / "g1.png")
    code, out, err = run_cli(["predict", str(photos), "--model", str(model_path), "--bank", str(bank_copy),
                              "--out", str(tmp_path / "labelled"), "--params", str(all_votes_params), "--device", "cpu"],
                             capfd)
    assert code == 0, err
    labels = np.asarray(Image.open(tmp_path / "labelled" / "g1.png"))
    assert (labels == new_id).all() and f"g1.png: {NEW}\n" in out
    # explain draws the retrieved segments, those added from their folder
    code, out, err = run_cli(["explain", str(photos / "g1.png"), "--model", str(model_path), "--bank", str(bank_copy),
                              "--out", str(tmp_path / "why.png"), "--params", str(all_votes_params), "--device", "cpu",
                              "--segments", "1", "--neighbours", "2"], capfd)
    assert code == 0 and (tmp_path / "why.png").stat().st_size > 0, err


def test_a_voc_folder_with_the_banks_classes_grows_it_twice(tmp_path, small_dataset, model_and_bank, bank_copy,
                                                             all_votes_params, capfd):
    """A VOC-layout folder without --classes: its masks use the bank's ids; --split picks the images; a
    second addition is recorded after the first."""
    model_path, _, _ = model_and_bank
    before = read_bank(bank_copy, expect={})
    args = ["bank", "add", str(small_dataset), "--bank", str(bank_copy), "--model", str(model_path),
            "--params", str(all_votes_params), "--device", "cpu"]
    assert run_cli(args + ["--split", "val"], capfd)[0] == 0
    assert run_cli(args + ["--split", "train"], capfd)[0] == 0
    grown = read_bank(bank_copy, expect={})
    first, second = json.loads(grown.attrs["additions"])
    assert first["images"] == len(VOCLayout(small_dataset, "val", 1).ids) and first["classes_added"] == []
    assert first["rows"][0] == len(before) and first["rows"][1] == second["rows"][0] and second["rows"][1] == len(grown)
    assert grown.attrs["class_names"] == before.attrs["class_names"]
    # the train split added again: the same segments as the bank was built with, in the same order
    assert torch.equal(grown.prototypes[second["rows"][0]:], before.prototypes)
    assert torch.equal(grown.labels[second["rows"][0]:], before.labels)


def older_schema(bank):
    with h5py.File(bank, "a") as f:
        f.attrs["schema_version"] = 3
        del f.attrs["additions"]


def broken_image(folder):
    (folder / "JPEGImages" / "g2.png").write_bytes(b"\x89PNG\r\n\x1a\n not a PNG any more")


def broken_mask(folder):
    (folder / "SegmentationClass" / "g1.png").write_bytes(b"garbage")


def unknown_class(folder):
    Image.fromarray(np.full((32, 40), 2, np.uint8), mode="L").save(folder / "SegmentationClass" / "g1.png")


@pytest.mark.parametrize("case, spoil, named", [
    ("another model", None, "bank.h5: made by another model"),
    ("older schema", older_schema, "bank.h5: prototype bank of schema version 3, older than version 4"),
    ("broken image", broken_image, "g2.png: cannot decode image"),
    ("broken mask", broken_mask, "g1.png: cannot decode mask"),
    ("class outside --classes", unknown_class, "g1.png: label values 2 outside the 2 declared classes"),
])
def test_a_refused_addition_leaves_the_bank_as_it_was(case, spoil, named, tmp_path, model_and_bank, bank_copy,
                                                      params, all_votes_params, capfd):
    model_path, _, model = model_and_bank
    folder = gizmo_folder(tmp_path / "more")
    if case == "another model":
        save_model(tmp_path / "other.pt", model, "the same weights, another file")
        model_path = tmp_path / "other.pt"
    elif case == "older schema":
        spoil(bank_copy)
    else:
        spoil(folder)
    before = bank_copy.read_bytes()
    code, out, err = run_cli(["bank", "add", str(folder), "--bank", str(bank_copy), "--model", str(model_path),
                              "--classes", f"background,{NEW}", "--params", str(all_votes_params), "--device", "cpu"], capfd)
    assert code == 1 and len(err.strip().splitlines()) == 1 and named in err, err
    if case == "older schema":
        assert "rebuild it with stages/build_bank.py" in err
    assert bank_copy.read_bytes() == before and [p.name for p in bank_copy.parent.iterdir()] == ["bank.h5"]


def test_an_interrupted_addition_leaves_the_bank_as_it_was(tmp_path, model_and_bank, bank_copy, params,
                                                           monkeypatch):
    model_path, _, _ = model_and_bank
    real_rows = segsort.grow.bank_rows

    def interrupted(*args):
        rows = real_rows(*args)
        yield next(rows)
        raise KeyboardInterrupt

    monkeypatch.setattr(segsort.grow, "bank_rows", interrupted)
    before = bank_copy.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        add_folder(bank_copy, model_path, gizmo_folder(tmp_path / "more"), params, torch.device("cpu"),
                   ["background", NEW])
    assert bank_copy.read_bytes() == before and [p.name for p in bank_copy.parent.iterdir()] == ["bank.h5"]


def test_a_built_bank_holds_no_addition_and_no_time(tmp_path, small_dataset, model_and_bank):
    """stages/build_bank.py's bank, made twice, is the same file byte for byte, with no addition."""
    _, bank_path, model = model_and_bank
    with h5py.File(bank_path) as f:
        attrs = {k: v for k, v in f.attrs.items() if k not in ("schema_version", "feature_dim", "additions")}
    names = class_names("tiny")
    for name in ("once.h5", "twice.h5"):
        build_bank(model, VOCLayout(small_dataset, "train", len(names)), "embedding", (3, 3), 3, tmp_path / name,
                   attrs)
    assert (tmp_path / "once.h5").read_bytes() == (tmp_path / "twice.h5").read_bytes()
    assert read_bank(tmp_path / "once.h5", expect={}).attrs["additions"] == "[]"
