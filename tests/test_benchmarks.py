"""The benchmark scripts run and print the ratio they exist for (their timings are read, not asserted)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_train_step_benchmark_prints_the_ratio():
    result = subprocess.run([sys.executable, "benchmarks/train_step.py", "--crop", "64", "--batch", "2",
                             "--steps", "1", "--warmup", "0"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ratio SegSort / softmax:" in result.stdout


def test_pseudo_segments_speed_benchmark_prints_both_speeds():
    result = subprocess.run([sys.executable, "benchmarks/pseudo_segments_speed.py", "--images", "2", "--batch", "2"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "images/s" in result.stdout.split("HED (")[1]
    assert "owt-ucm, one core:" in result.stdout and "s per image" in result.stdout
