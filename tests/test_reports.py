"""Pieces of the reports: parameter overrides of the sweeps, test-split submission packages (Table 7),
Table 4 from the latency benchmark and the sweep, and the headline metrics file."""
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from segsort.data.voc import VOCLayout
from segsort.io import DataError
from segsort.stage import load_params
from segsort.submission import VOC_RESULTS, write_submission
from segsort.tables import latency_table, load_paper_tables, server_table

REPO = Path(__file__).resolve().parents[1]


def test_set_overrides_after_the_preset_and_refuses_unknown_keys():
    params = load_params(REPO / "params.yaml", ["segsort.grid=[3, 3]", "embedding_dim=8"])
    assert params["segsort"]["grid"] == [3, 3] and params["embedding_dim"] == 8
    with pytest.raises(DataError, match="segsort.gird"):
        load_params(REPO / "params.yaml", ["segsort.gird=[3, 3]"])
    with pytest.raises(DataError, match="KEY=VALUE"):
        load_params(REPO / "params.yaml", ["embedding_dim"])


def test_submission_package_holds_every_test_prediction_in_the_server_format(small_dataset, tmp_path):
    dataset = VOCLayout(small_dataset, "test", num_classes=9, with_labels=False)
    assert len(dataset) == 2

    def predict(sample):
        return (np.arange(sample.image.shape[0] * sample.image.shape[1]) % 9).astype(np.uint8).reshape(
            sample.image.shape[:2])

    out = tmp_path / "model.zip"
    assert write_submission(predict, dataset, "tiny", out) == 2
    with zipfile.ZipFile(out) as package:
        assert package.namelist() == [f"{VOC_RESULTS}/{image_id}.png" for image_id in dataset.ids]
        for image_id in dataset.ids:
            png = Image.open(io.BytesIO(package.read(f"{VOC_RESULTS}/{image_id}.png")))
            assert png.mode == "P"
            sample = dataset[dataset.ids.index(image_id)]
            np.testing.assert_array_equal(np.asarray(png), predict(sample))
    again = tmp_path / "again.zip"
    write_submission(predict, dataset, "tiny", again)
    assert again.read_bytes() == out.read_bytes()  # same predictions, same bytes


def test_cityscapes_packages_carry_label_ids(small_dataset, tmp_path):
    dataset = VOCLayout(small_dataset, "test", num_classes=9, with_labels=False)
    out = tmp_path / "cityscapes.zip"
    write_submission(lambda sample: np.full(sample.image.shape[:2], 13, np.uint8), dataset, "cityscapes", out)
    with zipfile.ZipFile(out) as package:
        png = np.asarray(Image.open(io.BytesIO(package.read(f"{dataset.ids[0]}.png"))))
    assert (png == 26).all()  # train id 13 (car) is label id 26


def test_an_empty_test_split_is_refused(small_dataset, tmp_path):
    root = tmp_path / "dataset"
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/test.txt").write_text("")
    with pytest.raises(DataError):
        write_submission(lambda s: None, VOCLayout(root, "test", 9, with_labels=False), "tiny", tmp_path / "x.zip")


def test_server_table_points_to_the_packages_beside_the_papers_values():
    paper = load_paper_tables(REPO / "references/paper_tables.yaml")["table7"]
    rows = [{"Method": "SegSort", "model": "m", "paper": {"method": "SegSort"}}]
    table = server_table("table7", rows, {"m": ("reports/submissions/m.zip", 20)}, paper, "the server")
    assert table.iloc[0][["submission", "images", "scored by"]].tolist() == ["reports/submissions/m.zip", 20,
                                                                             "the server"]
    assert table.iloc[0]["mIoU (paper)"] == paper["rows"][1]["values"]["mIoU"]
    with pytest.raises(DataError, match="no submission package given for m"):
        server_table("table7", rows, {}, paper, "the server")


def latency_rows():
    base = {"device": "CPU", "network": "net", "image_size": "64x64"}
    rows = [{"method": "softmax", "bank": None, "kmeans_iterations": None, "knn_k": None, "kmeans_pct": None,
             "knn_pct": None, "time_ms": 100.0, "memory_mib": 1000.0, **base}]
    for iterations, k in [(2, 1), (4, 1), (4, 11), (10, 11)]:
        rows.append({"method": "segsort", "bank": 36000, "kmeans_iterations": iterations, "knn_k": k,
                     "kmeans_pct": 2.0 * iterations, "knn_pct": 1.0, "time_ms": 100.0 + iterations,
                     "memory_mib": 1010.0, **base})
    return pd.DataFrame(rows)


def test_table4_takes_times_from_the_benchmark_and_miou_from_the_sweep():
    paper = load_paper_tables(REPO / "references/paper_tables.yaml")["table4"]
    sweep = {(2, 1): 70.0, (4, 1): 71.0, (4, 11): 72.0, (10, 11): 73.0}
    table = latency_table(paper, latency_rows(), 36000, sweep, softmax_miou=None, miou_source="m on tiny val")
    assert table["Method"].tolist() == [row["method"] for row in paper["rows"]]
    last = table.iloc[-1]
    assert last["Overall time"] == 110.0 and last["Overall time vs softmax"] == 1.1
    assert last["memory vs softmax"] == 1.01 and last["mIoU"] == 73.0 and last["mIoU Δ"] == round(73.0 - 78.69, 2)
    assert last["Overall time vs softmax (paper)"] == round(207.51 / 170.34, 4)
    with pytest.raises(DataError, match="no latency run or no inference sweep result for 10 iter 11-NN"):
        latency_table(paper, latency_rows(), 36000, {k: v for k, v in sweep.items() if k != (10, 11)}, None, "m")


@pytest.mark.slow
def test_headline_metrics_collect_every_tables_main_columns(tmp_path):
    pd.DataFrame([{"Method": "A", "model": "a", "mIoU": 70.0, "mIoU (paper)": 71.0, "f-measure": 50.0}]).to_csv(
        tmp_path / "table1.csv", index=False)
    pd.DataFrame([{"Method": "A", "metric": "recall", "model": "a", "cat": 1.0, "mean": 40.0}]).to_csv(
        tmp_path / "table5.csv", index=False)
    pd.DataFrame([{"Method": "A", "model": "a", "submission": "a.zip", "mIoU (paper)": 1.0}]).to_csv(
        tmp_path / "table7.csv", index=False)
    out = tmp_path / "headline.json"
    subprocess.run([sys.executable, "stages/headline_metrics.py", "--tables", *(str(tmp_path / f"table{i}.csv")
                    for i in (1, 5, 7)), "--out", str(out)], cwd=REPO, check=True, capture_output=True)
    assert json.loads(out.read_text()) == {"table1": {"a": {"mIoU": 70.0, "f-measure": 50.0}},
                                           "table5": {"a recall": {"mean": 40.0}}}


@pytest.mark.slow
def test_ablation_values_must_differ_from_the_reference_run(tmp_path):
    metrics = {"model": "x", "grid": [5, 5], "embedding_dim": 32, "miou": 0.5, "boundary_f": 0.4}
    (tmp_path / "a.json").write_text(json.dumps(metrics))
    (tmp_path / "ref.json").write_text(json.dumps({**metrics, "model": "ref"}))
    result = subprocess.run([sys.executable, "stages/ablation_figure.py", "--quantity", "clusters", "--metrics",
                             str(tmp_path / "a.json"), "--reference", str(tmp_path / "ref.json"), "--curve",
                             str(tmp_path / "c.csv"), "--out", str(tmp_path / "f.png")],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1 and "clusters: a value appears twice" in result.stderr
    assert not (tmp_path / "c.csv").exists()
