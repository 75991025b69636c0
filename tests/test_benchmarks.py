"""The benchmark scripts run and print the ratio they exist for (their timings are read, not asserted)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the benchmark scripts, on every network

REPO = Path(__file__).resolve().parents[1]


def test_train_step_benchmark_prints_the_ratio():
    result = subprocess.run([sys.executable, "benchmarks/train_step.py", "--crop", "64", "--batch", "2",
                             "--steps", "1", "--warmup", "0"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio SegSort / softmax:" in result.stdout
    counts = [line.split("one step: ")[1] for line in result.stdout.splitlines() if "one step: " in line]
    assert len(counts) == 2 and all("operator calls" in c and "host syncs" in c for c in counts), result.stdout
    # progress as it goes: on a CPU the estimate comes before the first measured step
    lines = result.stdout.splitlines()
    [estimate] = [i for i, line in enumerate(lines) if line.startswith("network lite0_pyramid, crop 64, batch 2: about")]
    [step] = [i for i, line in enumerate(lines) if line.startswith("step 1 of 1 (timed): softmax ")]
    assert estimate < step and "GiB at the peak" in lines[estimate] and "2 steps of each objective" in lines[estimate]


def test_train_step_benchmark_refuses_a_size_beyond_the_memory_in_one_line():
    result = subprocess.run([sys.executable, "benchmarks/train_step.py", "--crop", "64", "--batch", "2",
                             "--steps", "1", "--warmup", "0", "--max-memory", "0.1"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: network lite0_pyramid, crop 64, batch 2 needs about "), result.stderr[-2000:]
    assert "GiB allowed (--max-memory): give a smaller" in result.stderr and "step 1 of 1" not in result.stdout


def test_pseudo_segments_speed_benchmark_prints_both_speeds():
    result = subprocess.run([sys.executable, "benchmarks/pseudo_segments_speed.py", "--images", "2", "--batch", "2"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "images/s" in result.stdout.split("HED (")[1]
    assert "owt-ucm, one core:" in result.stdout and "s per image" in result.stdout


def test_inference_latency_benchmark_writes_table4(tmp_path):
    out = tmp_path / "table4.csv"
    result = subprocess.run([sys.executable, "benchmarks/inference_latency.py", "--network", "lite0_pyramid",
                             "--size", "48", "64", "--images", "1", "--repeats", "1", "--warmup", "0",
                             "--banks", "50", "300", "--iterations", "1", "2", "--knn", "1", "3",
                             "--device", "cpu", "--threads", "1", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    import csv
    rows = list(csv.DictReader(out.open()))
    assert [r["method"] for r in rows] == ["softmax"] + ["segsort"] * 8
    assert {(r["bank"], r["kmeans_iterations"], r["knn_k"]) for r in rows[1:]} == {
        (b, i, k) for b in ("50", "300") for i in ("1", "2") for k in ("1", "3")}
    for column in ("method", "bank", "kmeans_iterations", "knn_k", "kmeans_pct", "knn_pct", "time_ms",
                   "time_vs_softmax", "memory_mib", "memory_vs_softmax", "device"):
        assert column in rows[0]
    assert rows[0]["time_vs_softmax"] == rows[0]["memory_vs_softmax"] == "1.0000"
    for row in rows:
        assert float(row["time_vs_softmax"]) > 0 and float(row["memory_vs_softmax"]) > 0
    for row in rows[1:]:
        assert 0 <= float(row["kmeans_pct"]) <= 100 and 0 <= float(row["knn_pct"]) <= 100
        assert row["bank_content"].startswith("synthetic")
    assert "x softmax" in result.stdout and "2 iterations + 3-NN vs softmax: time" in result.stdout


def test_stage_times_measures_every_stage_of_a_dataset(tmp_path):
    out = tmp_path / "throughput.csv"
    result = subprocess.run([sys.executable, "benchmarks/stage_times.py", "measure", "--datasets", "tiny",
                             "--out", str(out), "--threads", "1", "--cores", "2", "--warmup", "0", "--steps", "1",
                             "--inference-images", "1", "--device", "cpu",
                             "--networks", "lite0_pyramid", "deeplabv3plus_lite0"],  # one SegSort-only, one with softmax (a stand-in)
                            cwd=REPO, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    import csv
    rows = list(csv.DictReader(out.open()))
    stages = {(r["stage"], r["network"], r["objective"]) for r in rows}
    assert {("hed_contours", "hed", ""), ("pseudo_segments", "owt-ucm", ""),
            ("train", "lite0_pyramid", "unsupervised"), ("train", "deeplabv3plus_lite0", "softmax"),
            ("build_bank", "lite0_pyramid", "segsort"), ("evaluate", "deeplabv3plus_lite0", "softmax")} <= stages
    for row in rows:
        assert float(row["seconds"]) > 0 and row["device"].startswith("CPU"), row
    assert float(next(r for r in rows if r["stage"] == "pseudo_segments")["parallel_per_second"]) > 0


@pytest.mark.parametrize("dataset", ["voc2012", "cityscapes"])
def test_committed_stage_time_estimate_follows_from_the_measurements(tmp_path, dataset):
    """reports/benchmarks/stage_times_<dataset>.csv is what the estimate step makes of the committed GPU
    measurements and params.yaml (a changed schedule must be re-estimated)."""
    out = tmp_path / "estimate.csv"
    result = subprocess.run([sys.executable, "benchmarks/stage_times.py", "estimate", "--dataset", dataset,
                             "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes() == (REPO / f"reports/benchmarks/stage_times_{dataset}.csv").read_bytes()
    not_estimated = [line for line in result.stdout.splitlines() if line.startswith("not estimated")]
    # Cityscapes' unsupervised run (not in the paper) was declared after the GPU measurements
    assert not_estimated == ([] if dataset == "voc2012" else
                             [f"not estimated: {job} (lite0_pyramid, unsupervised): not measured" for job in
                              ("replicate_unsup_train_aug-1", "replicate_unsup_train_aug-2",
                               "train_unsupervised-unsup_train_aug")])
