"""The hidden-class experiment (params.yaml hidden_class): the run and its bank never see the class, the
images added are the first that show it outside the bank split, `segsort bank add --out` leaves the bank as
it was, the table reads its rows from metrics and banks, and a wrong setting is refused naming its key."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from segsort.bank import read_bank
from segsort.cli import main as segsort_cli
from segsort.data import class_names, hidden_class
from segsort.data.voc import VOCLayout
from segsort.hidden_class import hidden_class_rows, images_showing, write_image_folder
from segsort.io import DataError, read_id_list, read_label_map
from segsort.stage import load_params, with_active_preset

REPO = Path(__file__).resolve().parents[1]
ROCKET = class_names("tiny").index("rocket")


def test_a_hidden_class_reads_as_void_and_nothing_else_changes(small_dataset):
    plain, hidden = VOCLayout(small_dataset, "train_aug", 9), VOCLayout(small_dataset, "train_aug", 9,
                                                                        hidden_classes=(ROCKET,))
    seen = 0
    for index in range(len(plain)):
        labels, without = plain[index].labels, hidden[index].labels
        rocket = labels == ROCKET
        seen += rocket.sum()
        assert (without[rocket] == 255).all() and (without[~rocket] == labels[~rocket]).all()
    assert seen > 0  # the small dataset shows the class, so the test can fail


def test_the_images_added_are_those_outside_the_bank_split_that_show_the_class(small_dataset):
    lists = small_dataset / "ImageSets" / "Segmentation"
    train = set(read_id_list(lists / "train.txt"))
    shares = {i: (read_label_map(small_dataset / "SegmentationClass" / f"{i}.png") > 0).mean()
              for i in read_id_list(lists / "train_aug.txt")}
    showing = images_showing(small_dataset, "train_aug", "train", class_id=0, min_share=0.05)  # background
    assert showing == [i for i in read_id_list(lists / "train_aug.txt") if i not in train
                       and 1 - shares[i] >= 0.05] and showing


def test_the_image_folder_holds_exactly_those_images_and_masks(small_dataset, tmp_path):
    ids = read_id_list(small_dataset / "ImageSets" / "Segmentation" / "val.txt")[:2]
    write_image_folder(small_dataset, ids, tmp_path / "added")
    assert sorted(p.stem for p in (tmp_path / "added" / "JPEGImages").iterdir()) == sorted(ids)
    for i in ids:
        assert ((tmp_path / "added" / "SegmentationClass" / f"{i}.png").read_bytes()
                == (small_dataset / "SegmentationClass" / f"{i}.png").read_bytes())


@pytest.mark.slow
def test_bank_add_out_writes_the_grown_bank_and_leaves_the_bank_as_it_was(tmp_path, small_dataset, model_and_bank,
                                                                        capfd):
    model_path, bank_path, _ = model_and_bank
    bank = shutil.copyfile(bank_path, tmp_path / "bank.h5")
    before = bank.read_bytes()
    code = segsort_cli(["bank", "add", str(small_dataset), "--split", "val", "--bank", str(bank), "--model",
                        str(model_path), "--out", str(tmp_path / "grown.h5"), "--device", "cpu"])
    assert code == 0, capfd.readouterr().err
    assert bank.read_bytes() == before
    grown, original = read_bank(tmp_path / "grown.h5", expect={}), read_bank(bank, expect={})
    (addition,) = json.loads(grown.attrs["additions"])
    assert addition["rows"] == [len(original), len(grown)] and len(grown) > len(original)


def write_metrics(path, model, ious, k):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "miou": float(np.mean(list(ious.values()))), "per_class_iou": ious,
                                "inference": {"knn_k": k}}))
    return path


def test_the_table_reads_the_class_and_the_other_classes_from_each_metrics_file(tmp_path, model_and_bank):
    _, bank, _ = model_and_bank
    labels = read_bank(bank, expect={}).labels
    some_class = int(labels[0])
    name = class_names("tiny")[some_class]
    others = {n: 0.5 for n in class_names("tiny") if n != name}
    references = [write_metrics(tmp_path / f"ref{k}.json", "sup_train_aug", {**others, name: iou}, k)
                  for k, iou in ((21, 0.8), (5, 0.7))]
    grown = [(n, write_metrics(tmp_path / f"k{k}" / f"{n}.json", "hidden_class", {**others, name: iou}, k), bank)
             for k in (5, 21) for n, iou in ((5, 0.4 + k / 100), (0, 0.0))]
    rows = hidden_class_rows(references, bank, grown, name, some_class)
    assert [(row["kNN k"], row["images added"]) for row in rows] == [(21, 0), (21, 0), (21, 5), (5, 0), (5, 0), (5, 5)]
    assert [row["trained with the class"] for row in rows] == ["yes", "no", "no"] * 2
    assert [row["class IoU"] for row in rows] == [80.0, 0.0, 61.0, 70.0, 0.0, 45.0]
    assert all(row["other classes mIoU"] == 50.0 for row in rows)
    assert all(row["class segments in bank"] == int((labels == some_class).sum()) > 0 for row in rows)
    with pytest.raises(DataError, match="scored with k = 5, and no reference metrics are"):
        hidden_class_rows(references[:1], bank, grown, name, some_class)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["hidden_class"]["classes"].update(tiny="kiwi"),
     "hidden_class.classes.tiny: 'kiwi' is not a class of tiny"),
    (lambda p: p["hidden_class"]["classes"].pop("tiny"), "hidden_class.classes names no class for dataset 'tiny'"),
])
def test_a_hidden_class_the_dataset_lacks_is_refused_naming_the_key(params_file, edit, message):
    p = json.loads(json.dumps(params_file))
    edit(p)
    with pytest.raises(DataError, match=message):
        hidden_class(with_active_preset(p))


@pytest.mark.parametrize("find, replace, message", [
    ("run: sup_train_aug ", "run: sup_train_aug_then_train ",
     "hidden_class.run: 'sup_train_aug_then_train' starts from 'sup_train_aug'"),
    ("run: sup_train_aug ", "run: softmax_mobilenetv2 ", "hidden_class.run: 'softmax_mobilenetv2' is not a supervised run"),
    ("sup_train_aug, sup_train_aug_then_train,", "sup_train_aug_then_train,",
     "hidden_class.run: 'sup_train_aug' must be in evaluation.kmeans_models"),
])
def test_a_wrong_hidden_class_run_is_refused_naming_the_key(tmp_path, find, replace, message):
    source = (REPO / "params.yaml").read_text()
    assert find in source
    path = tmp_path / "params.yaml"
    path.write_text(source.replace(find, replace, 1))
    with pytest.raises(DataError, match=message):
        load_params(path)
    assert yaml.safe_load(path.read_text())  # the file itself is valid YAML: the schema refused it
