"""The Python API (segsort.Segmenter): the labels `segsort predict` writes, and evidence that adds up (each
segment's k nearest bank rows, their votes, the winning class)."""
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from segsort import Segmenter
from segsort.bank import read_bank
from segsort.cli import main as segsort_cli
from segsort.data import class_names
from segsort.data.voc import VOCLayout
from segsort.inference import InferenceConfig, segsort_labels
from segsort.io import DataError
from segsort.stage import load_params

pytestmark = pytest.mark.slow  # a small model and its bank, the CLI on them


@pytest.fixture
def photos(tmp_path, small_dataset):
    """Two validation photos of the small dataset, and a larger random one that the preset's max_side bounds."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for image_id in VOCLayout(small_dataset, "val", 1, with_labels=False).ids[:2]:
        (folder / f"{image_id}.jpg").write_bytes((small_dataset / "JPEGImages" / f"{image_id}.jpg").read_bytes())
    return folder


def predicted(photos, out, model_and_bank, params_path) -> dict[str, np.ndarray]:
    model_path, bank_path, _ = model_and_bank
    assert segsort_cli(["predict", str(photos), "--model", str(model_path), "--bank", str(bank_path), "--out", str(out),
                        "--params", str(params_path), "--device", "cpu"]) == 0
    return {path.stem: np.asarray(Image.open(out / f"{path.stem}.png")) for path in sorted(photos.iterdir())}


def test_labels_are_what_predict_writes_whatever_the_image_is_given_as(tmp_path, photos, model_and_bank, params_path):
    model_path, bank_path, _ = model_and_bank
    written = predicted(photos, tmp_path / "labelled", model_and_bank, params_path)
    segmenter = Segmenter.load(model_path, bank_path, device="cpu", params=params_path)
    for path in sorted(photos.iterdir()):
        assert np.array_equal(segmenter(path).labels, written[path.stem])
    with Image.open(path) as pil:  # the last photo as a string, a PIL image, a read-only array; labels alone
        pil.load()
        for image in (str(path), pil, np.asarray(pil.convert("RGB"))):
            assert np.array_equal(segmenter(image, evidence=False).labels, written[path.stem]), type(image)


def test_the_gpu_is_taken_when_there_is_one(model_and_bank, params_path):
    model_path, bank_path, _ = model_and_bank
    segmenter = Segmenter.load(model_path, bank_path, params=params_path)
    assert segmenter.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert segmenter.bank.prototypes.device == segmenter.device


def check_evidence(result, segmenter, shape) -> None:
    """Every pixel is in one segment; each segment's votes are its k neighbours' labels, they sum to k, the
    winner is its label, and its neighbours come most similar first, each a bank row of that label."""
    bank = segmenter.bank
    k = min(segmenter.config.knn_k, len(bank))
    assert result.labels.shape == result.segment_map.shape == shape
    covered = np.zeros(shape, dtype=int)
    for segment in result.segments:
        covered += segment.mask
        assert len(segment.neighbours) == k and segment.votes.sum() == k
        assert np.array_equal(np.bincount([n.label for n in segment.neighbours], minlength=len(result.class_names)),
                              segment.votes)
        assert segment.label == int(np.argmax(segment.votes))  # most votes; ties to the lower class id
        similarities = [n.similarity for n in segment.neighbours]
        assert similarities == sorted(similarities, reverse=True)
        assert all(n.label == int(bank.labels[n.index]) and n.provenance.index == n.index for n in segment.neighbours)
        assert all(n.image_id == n.provenance.image_id and n.image_id for n in segment.neighbours)
        y, x = np.argwhere(segment.mask)[0]
        assert result.segment_at(y, x) is segment
    assert np.all(covered == 1)


def test_evidence_adds_up_and_each_segment_is_labelled_with_its_winner(photos, model_and_bank, params_path):
    model_path, bank_path, _ = model_and_bank
    segmenter = Segmenter.load(model_path, bank_path, device="cpu", params=params_path)
    assert segmenter.config.scales == (1.0,) and not segmenter.config.flip  # the preset's one view
    for path in sorted(photos.iterdir()):
        result = segmenter(path)
        check_evidence(result, segmenter, result.labels.shape)
        for segment in result.segments:  # one view: the segment's votes are its pixels' labels
            assert np.all(result.labels[segment.mask] == segment.label)
        assert result.class_names == class_names("tiny")


def test_a_multi_scale_preset_labels_as_predict_does_and_explains_its_scale_one_view(tmp_path, photos, model_and_bank,
                                                                                      params_path):
    """Scales, mirrors and a max_side that shrinks the photos: the labels are still predict's (votes of every
    view), the evidence that of the scale-1 view, its segment ids resized back to the photo as the labels are."""
    params = yaml.safe_load(params_path.read_text())
    params["presets"]["tiny"]["inference"].update(scales=[0.75, 1.0], flip=True, max_side=48)
    params_path.write_text(yaml.safe_dump(params))
    written = predicted(photos, tmp_path / "labelled", model_and_bank, params_path)
    model_path, bank_path, model = model_and_bank
    segmenter = Segmenter.load(model_path, bank_path, device="cpu", params=params_path)
    bank = read_bank(bank_path, expect={})
    config = InferenceConfig.from_params(load_params(params_path))
    for path in sorted(photos.iterdir()):
        result = segmenter(path)
        image = np.asarray(Image.open(path).convert("RGB"))
        assert max(image.shape[:2]) > 48
        assert np.array_equal(result.labels, written[path.stem])
        assert np.array_equal(result.labels, segsort_labels(model, image, bank.prototypes, bank.labels, config,
                                                            len(class_names("tiny"))))
        check_evidence(result, segmenter, image.shape[:2])
        assert sum(s.pixels for s in result.segments) == np.prod(segmenter.segments(image)[0].shape)


def test_an_image_of_another_kind_is_refused_in_one_line(model_and_bank, params_path):
    model_path, bank_path, _ = model_and_bank
    segmenter = Segmenter.load(model_path, bank_path, device="cpu", params=params_path)
    with pytest.raises(DataError, match=r"must be \(H, W, 3\) uint8 RGB, not \(20, 30\) uint8"):
        segmenter(np.zeros((20, 30), np.uint8))
    with pytest.raises(DataError, match="float32"):
        segmenter(np.zeros((20, 30, 3), np.float32))
    with pytest.raises(TypeError, match="not list"):
        segmenter([[0, 0, 0]])


def test_a_softmax_model_needs_no_bank_and_labels_as_predict_does(tmp_path, photos, params_path, params):
    from segsort.checkpoint import save_model
    from segsort.models import build_model, network_config

    torch.manual_seed(0)
    model = build_model(network_config(params["networks"]["lite0_pyramid"], "softmax", 8, len(class_names("tiny"))))
    save_model(tmp_path / "softmax.pt", model, "softmax")
    assert segsort_cli(["predict", str(photos), "--model", str(tmp_path / "softmax.pt"), "--out", str(tmp_path / "out"),
                        "--params", str(params_path), "--device", "cpu"]) == 0
    segmenter = Segmenter.load(tmp_path / "softmax.pt", device="cpu", params=load_params(params_path))
    assert segmenter.bank is None and segmenter.class_names == class_names("tiny")
    for path in sorted(photos.iterdir()):
        result = segmenter(path)
        assert np.array_equal(result.labels, np.asarray(Image.open(tmp_path / "out" / f"{path.stem}.png")))
        assert result.segments == [] and result.segment_map is None
