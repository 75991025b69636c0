"""Datasets of your own (params.yaml `datasets`): `segsort check-dataset` names every problem of a folder,
and the pipeline runs on a labelled folder (classes and palette unlike tiny's: Table 3's chain, in
Snakemake) and on a folder of photos without labels (mixed sizes, greyscale, RGBA, 16-bit: the unsupervised
chain and its groups of segments, in DVC), both planned by both tools. Schedules are cut to a few steps."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from segsort.cli import main as segsort_cli
from segsort.data.own import build_own_dataset, check_dataset
from segsort.data.voc import VOCLayout
from segsort.io import DataError
from workflow_dags import copy_tracked_files, dvc_stages, snakemake_jobs

CLASSES = ["background", "disc", "bar"]
PALETTE = [[0, 0, 0], [250, 200, 0], [0, 90, 250]]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def labelled_folder(root: Path, count: int = 16, seed: int = 0) -> Path:
    """Photos-like images of a disc and a bar on a textured ground, with RGB colour masks (white = void
    along the shapes' borders) and no split lists."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    for i in range(count):
        height, width = int(rng.integers(72, 120)), int(rng.integers(72, 120))
        image = (rng.normal(110, 25, (height, width, 3))).clip(0, 255).astype(np.uint8)
        ids = np.zeros((height, width), np.uint8)
        centre = (int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20)))
        cv2.circle(ids, centre, int(rng.integers(8, 18)), 1, -1)
        x, y = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 12))
        cv2.rectangle(ids, (x, y), (x + 28, y + 10), 2, -1)
        image[ids == 1] = (image[ids == 1] * 0.3 + np.array([230, 180, 30]) * 0.7).astype(np.uint8)
        image[ids == 2] = (image[ids == 2] * 0.3 + np.array([20, 80, 220]) * 0.7).astype(np.uint8)
        colours = np.array(PALETTE, np.uint8)[ids]
        border = cv2.morphologyEx(ids, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        colours[border] = 255
        Image.fromarray(image).save(root / "JPEGImages" / f"img{i:02d}.jpg", quality=92)
        Image.fromarray(colours).save(root / "SegmentationClass" / f"img{i:02d}.png")
    return root


def images_only_folder(root: Path, count: int = 10, seed: int = 1) -> Path:
    """Photos without labels: mixed sizes and formats, one greyscale, one RGBA, one 16-bit PNG."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True)
    for i in range(count):
        height, width = int(rng.integers(64, 140)), int(rng.integers(64, 140))
        image = (rng.normal(120, 30, (height, width, 3))).clip(0, 255).astype(np.uint8)
        cv2.circle(image, (width // 2, height // 2), min(height, width) // 4, tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        if i == 0:
            Image.fromarray(image[..., 0]).save(root / "JPEGImages" / f"grey{i}.png")
        elif i == 1:
            Image.fromarray(np.dstack([image, np.full((height, width), 200, np.uint8)])).save(
                root / "JPEGImages" / f"rgba{i}.png")
        elif i == 2:
            Image.fromarray(image[..., 1].astype(np.uint16) * 257).save(root / "JPEGImages" / f"deep{i}.png")
        elif i == 3:
            Image.fromarray(image).save(root / "JPEGImages" / f"photo{i}.bmp")
        else:
            Image.fromarray(image).save(root / "JPEGImages" / f"photo{i}.jpg", quality=90)
    return root


# ------------------------------------------------------------------------------------------- check-dataset

@pytest.fixture
def folder(tmp_path) -> Path:
    return labelled_folder(tmp_path / "mine", count=6)


def problems_of(folder: Path) -> list[str]:
    return check_dataset(folder, CLASSES, PALETTE)


def test_a_good_folder_has_no_problems_and_builds_with_a_seeded_split(folder, tmp_path, capsys):
    assert problems_of(folder) == []
    assert segsort_cli(["check-dataset", str(folder), "--classes", ",".join(CLASSES)]) == 1  # RGB masks need the palette
    build_own_dataset(tmp_path / "out", "mine", {"root": str(folder), "classes": CLASSES, "palette": PALETTE,
                                                "val_fraction": 0.34}, seed=0)
    train, val = (VOCLayout(tmp_path / "out", split, len(CLASSES)) for split in ("train", "val"))
    assert (len(train), len(val)) == (4, 2) and set(train.ids).isdisjoint(val.ids)
    labels = np.concatenate([train[i].labels.ravel() for i in range(len(train))])
    assert set(np.unique(labels)) == {0, 1, 2, 255}


def test_an_unreadable_image_is_named(folder):
    (folder / "JPEGImages" / "img03.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    [problem] = problems_of(folder)
    assert problem.startswith(f"{folder / 'JPEGImages' / 'img03.jpg'}: cannot decode image")


def test_a_missing_mask_is_named(folder):
    (folder / "SegmentationClass" / "img02.png").unlink()
    assert problems_of(folder) == [f"{folder / 'SegmentationClass' / 'img02.png'}: mask is missing (image img02.jpg)"]


def test_a_mask_of_another_size_is_named(folder):
    mask = folder / "SegmentationClass" / "img01.png"
    Image.open(mask).resize((30, 20), Image.NEAREST).save(mask)
    [problem] = problems_of(folder)
    assert problem.startswith(f"{mask}: mask is 30x20 but image img01.jpg is")


def test_labels_outside_the_declared_classes_are_named(folder, tmp_path):
    ids = np.zeros((80, 80), np.uint8)
    ids[10:20, 10:20] = 7
    Image.open(folder / "JPEGImages" / "img00.jpg").resize((80, 80)).save(folder / "JPEGImages" / "img00.jpg")
    Image.fromarray(ids, mode="L").save(folder / "SegmentationClass" / "img00.png")
    assert problems_of(folder) == [f"{folder / 'SegmentationClass' / 'img00.png'}: label values 7 outside the 3 "
                                   f"declared classes (0..2; 255 = void)"]
    colours = np.zeros((80, 80, 3), np.uint8)
    colours[0:5, 0:5] = (1, 2, 3)
    Image.fromarray(colours).save(folder / "SegmentationClass" / "img00.png")
    assert problems_of(folder) == [f"{folder / 'SegmentationClass' / 'img00.png'}: colours #010203 are not in the "
                                   f"declared palette (white #ffffff is void)"]


def test_ids_listed_without_an_image_are_named(folder):
    lists = folder / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("img00\nimg01\nghost\n")
    (lists / "val.txt").write_text("img02\n")
    assert problems_of(folder) == [f"{lists / 'train.txt'}: 1 ids listed without an image in JPEGImages/: ghost"]


def test_test_list_images_need_no_mask(folder, tmp_path):
    shutil.copy(folder / "JPEGImages" / "img05.jpg", folder / "JPEGImages" / "unseen.jpg")
    lists = folder / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("img00\nimg01\nimg02\n")
    (lists / "val.txt").write_text("img03\nimg04\n")
    (lists / "test.txt").write_text("unseen\n")
    assert problems_of(folder) == []
    build_own_dataset(tmp_path / "out", "mine", {"root": str(folder), "classes": CLASSES, "palette": PALETTE}, seed=0)
    assert (tmp_path / "out/JPEGImages/unseen.jpg").is_file() and not (tmp_path / "out/SegmentationClass/unseen.png").exists()
    assert VOCLayout(tmp_path / "out", "test", len(CLASSES), with_labels=False).ids == ["unseen"]


def test_empty_and_incomplete_split_lists_are_named(folder):
    lists = folder / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("\n")
    assert problems_of(folder) == [f"{lists / 'train.txt'}: the list is empty",
                                   f"{lists}: has train.txt but needs both train.txt and val.txt"]


def test_duplicate_ids_are_named(folder):
    shutil.copy(folder / "JPEGImages" / "img04.jpg", folder / "JPEGImages" / "img04.png")
    lists = folder / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("img00\nimg00\nimg01\n")
    (lists / "val.txt").write_text("img02\n")
    assert problems_of(folder) == [
        f"{folder / 'JPEGImages' / 'img04.jpg'}, {folder / 'JPEGImages' / 'img04.png'}: 2 images share the id 'img04'",
        f"{lists / 'train.txt'}: ids listed more than once: img00"]


def test_every_problem_at_once_from_the_command_line(folder, tmp_path, capsys):
    (folder / "SegmentationClass" / "img02.png").unlink()
    (folder / "JPEGImages" / "img03.jpg").write_bytes(b"junk")
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["datasets"] = {"mine": {"root": str(folder), "preset": "tiny", "classes": CLASSES, "palette": PALETTE}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert segsort_cli(["check-dataset", str(folder), "--dataset", "mine", "--params", str(tmp_path / "params.yaml")]) == 1
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 2 and "2 problems" in out.err
    with pytest.raises(DataError, match=r"datasets.mine .*: 2 problems"):
        build_own_dataset(tmp_path / "out", "mine", params["datasets"]["mine"] | {"val_fraction": 0.2}, seed=0)
    assert not (tmp_path / "out").exists()


def test_without_classes_the_masks_of_a_folder_are_still_read(folder, capsys):
    """No --classes or --dataset: the masks SegmentationClass/ holds are decoded and sized against their
    images (their class ids cannot be checked, and the summary says so)."""
    assert segsort_cli(["check-dataset", str(folder)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{folder}: no problems (labelled: masks decoded and sized; class ids not checked: give --classes or "
        f"--dataset)"]
    mask = folder / "SegmentationClass" / "img01.png"
    Image.open(mask).resize((30, 20), Image.NEAREST).save(mask)
    (folder / "SegmentationClass" / "img04.png").write_bytes(b"\x89PNG not really")
    assert segsort_cli(["check-dataset", str(folder)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines()[0].startswith(f"{mask}: mask is 30x20 but image img01.jpg is")
    assert out.out.splitlines()[1].startswith(f"{folder / 'SegmentationClass' / 'img04.png'}: cannot decode mask")
    assert out.err.startswith(f"{folder}: 2 problems (labelled: masks decoded and sized")
    (folder / "SegmentationClass" / "img04.png").unlink()
    assert segsort_cli(["check-dataset", str(folder)]) == 1
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 2 and out.err.startswith(f"{folder}: 2 problems")  # the mask is missing
    shutil.rmtree(folder / "SegmentationClass")
    assert segsort_cli(["check-dataset", str(folder)]) == 0
    assert capsys.readouterr().out == f"{folder}: no problems (images only)\n"


def test_one_problem_is_said_in_the_singular_and_an_images_only_dataset_reads_no_mask(folder, tmp_path, capsys):
    (folder / "JPEGImages" / "img03.jpg").write_bytes(b"junk")
    shutil.copy(folder / "JPEGImages" / "img03.jpg", folder / "SegmentationClass" / "img02.png")
    [problem] = check_dataset(folder, images_only=True)  # the broken mask of img02 is not read
    assert problem.startswith(f"{folder / 'JPEGImages' / 'img03.jpg'}: cannot decode image")
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["datasets"] = {"photos": {"root": str(folder), "preset": "tiny"}}  # declared without classes
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert segsort_cli(["check-dataset", str(folder), "--dataset", "photos",
                        "--params", str(tmp_path / "params.yaml")]) == 1
    assert capsys.readouterr().err == f"{folder}: 1 problem (images only)\n"


# ------------------------------------------------------------------------------------------ the pipeline

def own_repo(work: Path, name: str, spec: dict) -> Path:
    """A scratch checkout whose params.yaml declares and selects the dataset `name`, with a preset of a few
    training steps (copied from tiny's) and small figures."""
    repo = copy_tracked_files(work / "repo", skip=("tests/", "reports/tiny/"))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    preset = params["presets"]["tiny"]
    for schedule in preset["schedules"].values():
        if schedule["steps"]:  # a schedule of 0 steps keeps its model
            schedule.update(steps=3, batch_size=2, crop=64)
    params["presets"]["quick"] = preset
    params["datasets"] = {name: {**spec, "preset": "quick"}}
    params["dataset"] = name
    params["checkpoint_every"] = 2
    params["threads"] = 1  # jobs of one thread: Snakemake runs two at once on CI's two cores
    params["prototype_figures"]["tsne"].update(samples=400, perplexity=10, canvas_px=480, patch_px=32)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = subprocess.run([sys.executable, "scripts/write_dvc_yaml.py"], cwd=repo, env=ENV, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    return repo


@pytest.mark.slow
def test_a_labelled_folder_of_your_own_runs_table3s_chain(tmp_path):
    folder = labelled_folder(tmp_path / "mine", count=12)
    repo = own_repo(tmp_path, "mine", {"root": str(folder), "classes": CLASSES, "palette": PALETTE, "val_fraction": 0.25})
    snakemake, dvc = snakemake_jobs(repo), dvc_stages(repo)
    assert sorted(snakemake) == sorted(dvc) and all(snakemake[name] == dvc[name] for name in snakemake)
    assert "table1" in snakemake and "fig8_finch" in snakemake  # the whole DAG, planned by both tools
    assert all(out.startswith(("data/mine/", "reports/mine/")) or out == "reports/pseudo_segments_quality.csv"
               for job in snakemake.values() for out in job["outs"])
    result = subprocess.run(["snakemake", "--cores", "2", "reports/mine/table3.csv"], cwd=repo, env=ENV,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(repo / "reports/mine/table3.csv")
    assert len(table) == 5 and table["mIoU"].between(0, 100).all()
    metrics = yaml.safe_load((repo / "reports/mine/metrics/sup_train.json").read_text())
    assert sorted(metrics["per_class_iou"]) == sorted(CLASSES)


@pytest.mark.slow
def test_a_broken_folder_stops_the_dag_before_hed(tmp_path):
    folder = labelled_folder(tmp_path / "mine", count=6)
    (folder / "SegmentationClass" / "img01.png").unlink()
    repo = own_repo(tmp_path, "mine", {"root": str(folder), "classes": CLASSES, "palette": PALETTE})
    result = subprocess.run(["snakemake", "--cores", "1", "data/mine/hed"], cwd=repo, env=ENV, capture_output=True,
                            text=True)
    assert result.returncode != 0
    log = (repo / "data/mine/logs/dataset.log").read_text()
    assert f"{folder / 'SegmentationClass' / 'img01.png'}: mask is missing" in log
    assert not (repo / "data/mine/dataset").exists() and not (repo / "data/mine/hed").exists()


@pytest.mark.slow
def test_a_folder_of_photos_without_labels_runs_the_unsupervised_chain_and_its_groups(tmp_path):
    folder = images_only_folder(tmp_path / "photos")
    repo = own_repo(tmp_path, "photos", {"root": str(folder)})
    snakemake, dvc = snakemake_jobs(repo), dvc_stages(repo)
    assert sorted(snakemake) == sorted(dvc)
    assert {job.split("-")[0] for job in snakemake} == {
        "dataset", "hed_contours", "pseudo_segments", "imagenet_model", "train_unsupervised",
        "prototype_bank_kmeans", "fig8_finch_unsup_train_aug", "fig10_tsne_unsup_train_aug"}
    result = subprocess.run(["dvc", "repro"], cwd=repo, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    log = (repo / "data/photos/logs/hed_contours.log").read_text()
    for mode in ("L", "RGBA", "I;16"):
        assert log.count(f"note: {mode} images are converted to 8-bit RGB") == 1, (mode, log)
    for figure in ("fig8_finch_unsup_train_aug", "fig10_tsne_unsup_train_aug"):
        image = np.asarray(Image.open(repo / f"reports/photos/figures/{figure}.png").convert("RGB"))
        assert image.shape[0] > 200 and image.std() > 10, figure
        shutil.copy(repo / f"reports/photos/figures/{figure}.png", tmp_path / f"{figure}.png")
    out = os.environ.get("SEGSORT_KEEP_FIGURES")
    if out:  # to look at them
        for figure in tmp_path.glob("fig*.png"):
            shutil.copy(figure, Path(out) / figure.name)
