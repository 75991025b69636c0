"""Tables with the paper's values beside ours: row matching, differences, rendering, and every row of
params.yaml `tables` finding its row in references/paper_tables.yaml."""
from pathlib import Path

import pandas as pd
import pytest

from segsort.io import DataError
from segsort.tables import build_table, load_paper_tables, markdown_table, paper_row

REPO = Path(__file__).resolve().parents[1]
PAPER = {"caption": "c", "dataset": "voc2012", "columns": ["mIoU", "f-measure"], "rows": [
    {"method": "A", "split": "val", "values": {"mIoU": 70.0, "f-measure": 50.0}},
    {"method": "A", "split": "test", "values": {"mIoU": 71.0, "f-measure": None}},
    {"method": "B", "split": "val", "values": {"mIoU": 72.5, "f-measure": 55.25}}]}


def test_ours_beside_the_papers_with_the_difference():
    rows = [{"Method": "A", "model": "a", "paper": {"method": "A", "split": "val"}},
            {"Method": "A", "model": "a", "paper": {"method": "A", "split": "test"}}]
    table = build_table("t", rows, {"a": {"miou": 0.75123, "boundary_f": 0.4}}, PAPER, "voc2012", ("background", "cat"))
    assert table.columns.tolist() == ["Method", "model", "mIoU", "mIoU (paper)", "mIoU Δ", "f-measure",
                                      "f-measure (paper)", "f-measure Δ"]
    assert table.iloc[0].tolist() == ["A", "a", 75.12, 70.0, 5.12, 40.0, 50.0, -10.0]
    assert pd.isna(table.iloc[1]["f-measure (paper)"]) and pd.isna(table.iloc[1]["f-measure Δ"])


def test_runs_of_several_seeds_show_their_mean_and_standard_deviation():
    rows = [{"Method": "A", "model": "a", "paper": {"method": "A", "split": "val"}},
            {"Method": "B", "model": "b", "paper": {"method": "B"}}]
    metrics = {"a": {"miou": 0.70, "boundary_f": 0.40}, "b": {"miou": 0.725, "boundary_f": 0.5}}
    replicates = {"a": [{"miou": 0.72, "boundary_f": 0.41}, {"miou": 0.74, "boundary_f": 0.45}]}  # b: no seed
    table = build_table("t", rows, metrics, PAPER, "voc2012", ("background", "cat"), replicates)
    assert table.columns.tolist() == ["Method", "model", "seeds", "mIoU", "mIoU std", "mIoU (paper)", "mIoU Δ",
                                      "f-measure", "f-measure std", "f-measure (paper)", "f-measure Δ"]
    # a: mean 72 (sample std of 70, 72, 74 is 2), compared with the paper's 70; f 42 +- 2.65
    assert table.iloc[0].tolist() == ["A", "a", 3, 72.0, 2.0, 70.0, 2.0, 42.0, 2.65, 50.0, -8.0]
    assert table.iloc[1]["seeds"] == 1 and pd.isna(table.iloc[1]["mIoU std"]) and table.iloc[1]["mIoU Δ"] == 0.0
    with pytest.raises(DataError, match="summary tables"):
        build_table("t", [{"model": "a", "paper": {"method": "A", "metric": "recall"}}], {"a": METRICS}, PER_CLASS,
                    "voc2012", ("background", "cat"), replicates)


def test_a_row_must_match_exactly_one_paper_row():
    with pytest.raises(DataError, match="2 rows of the paper's table match {'method': 'A'}"):
        paper_row(PAPER, "t", {"method": "A"})
    with pytest.raises(DataError, match="0 rows"):
        paper_row(PAPER, "t", {"method": "C"})
    with pytest.raises(DataError, match="no metrics file given for b"):
        build_table("t", [{"model": "b", "paper": {"method": "B"}}], {}, PAPER, "voc2012", ("background", "cat"))


PER_CLASS = {"caption": "c", "dataset": "voc2012", "columns": ["cat", "dog", "mean"], "rows": [
    {"method": "A", "metric": "recall", "values": {"cat": 60.0, "dog": 40.0, "mean": 55.0}}]}
METRICS = {"miou": 0.5, "boundary_recall": 0.45, "boundary_precision": 0.4, "boundary_f": 0.42,
           "per_class_iou": {"background": 0.9, "cat": 0.6, "bird": 0.0},
           "per_class_boundary": {"background": {"precision": 0.5, "recall": 0.7, "f_measure": 0.58},
                                  "cat": {"precision": 0.3, "recall": 0.2, "f_measure": 0.24}, "bird": None}}


def test_per_class_tables_show_our_classes_and_compare_the_columns_the_paper_shares():
    row = {"Method": "A", "metric": "recall", "model": "a", "paper": {"method": "A", "metric": "recall"}}
    table = build_table("t", [row], {"a": METRICS}, PER_CLASS, "voc2012", ("background", "cat", "bird"))
    # no background column (the paper prints none, its mean includes it); bird has no boundary at all
    assert table.columns.tolist() == ["Method", "metric", "model", "cat", "cat (paper)", "cat Δ", "bird", "mean",
                                      "mean (paper)", "mean Δ"]
    assert table.iloc[0][["cat", "cat (paper)", "cat Δ", "mean", "mean Δ"]].tolist() == [20.0, 60.0, -40.0, 45.0, -10.0]
    assert pd.isna(table.iloc[0]["bird"])
    iou_row = {"Method": "A", "model": "a", "paper": {"method": "A"}}
    iou = build_table("t", [iou_row], {"a": METRICS}, PER_CLASS, "voc2012", ("background", "cat", "bird"))
    assert iou.iloc[0][["cat", "bird", "mean"]].tolist() == [60.0, 0.0, 50.0]
    # on another dataset a class that shares a name is not compared, the mean still is
    tiny = build_table("t", [iou_row], {"a": METRICS}, PER_CLASS, "tiny", ("background", "cat", "bird"))
    assert tiny.columns.tolist() == ["Method", "model", "cat", "bird", "mean", "mean (paper)", "mean Δ"]


def test_markdown_leaves_missing_values_blank():
    text = markdown_table(pd.DataFrame([{"x": "A", "y": 1.5}, {"x": "B", "y": None}]))
    assert text.splitlines() == ["| x | y |", "|---|---|", "| A | 1.50 |", "| B |  |"]


def test_every_configured_row_finds_its_paper_row(params):
    paper = load_paper_tables(REPO / "references" / "paper_tables.yaml")
    for name, rows in params["tables"].items():
        for row in rows:
            values = paper_row(paper[name], name, row["paper"])
            assert values[paper[name]["columns"][-1]] is not None, (name, row)  # its mean, at least
