"""The tiny-dataset DAG, run by Snakemake in a scratch copy of the repository, reproduces the committed
reports/tiny/table3.csv (mIoU and boundary f-measure per row).

What CI rebuilds: the Lite0 runs of Table 3, seed `seed` only (about 15 minutes on 2 cores). The rest of
the DAG (the other seeds, the MobileNetV2 and ResNet-101 trainings of the other tables, the sweeps and the
retraining of the ablations) takes several times as long; for those tables test_tables_from_committed_
results.py rebuilds every table from the committed per-model results, exactly.

Tolerance. Every stage pins its kernels (segsort/__init__.py), so a machine whose numerics fingerprint
(segsort/numerics.py) is the one of the machine that made the committed reports computes the same
floats, and the table must be equal to its last digit. A machine with another fingerprint (a CPU without
AVX2, or whose kernels differ despite the pinning) trains as if from another seed, so each row may then
differ by twice that row's standard deviation over the committed seeds (reports/tiny/table3_seeds.csv:
2.2 to 4.2 mIoU points); the untrained row (1) was identical on two different CPUs, so it must be equal.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from segsort.data import class_names
from workflow_dags import copy_tracked_files, dvc_downstream, snakemake_jobs

pytestmark = pytest.mark.slow  # the tiny Table 3 DAG, about 15 minutes on 2 cores

REPO = Path(__file__).resolve().parents[1]
REPORTS_NUMERICS = "e8ff64110d39b561"  # segsort.numerics.fingerprint of the AMD EPYC (AVX2) that made reports/tiny
TARGET, TARGET_STAGE = "reports/tiny/table3.csv", "table3"  # what the parameter-change checks rebuild


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> Path:
    work = copy_tracked_files(tmp_path_factory.mktemp("pipeline"), skip=("reports/tiny/", "tests/"))  # makes its own
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["snakemake", "--cores", "2", TARGET], cwd=work, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]
    return work


def test_table3_matches_committed_numbers(pipeline_run):
    expected = pd.read_csv(REPO / TARGET)
    produced = pd.read_csv(pipeline_run / TARGET)
    assert produced["model"].tolist() == expected["model"].tolist()
    printed = subprocess.run([sys.executable, "-m", "segsort.numerics"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout  # in its own process, as a stage computes
    same_numerics = f"numerics fingerprint: {REPORTS_NUMERICS}" in printed
    spread = pd.read_csv(REPO / "reports/tiny/table3_seeds.csv").set_index("model").reindex(expected["model"])
    trained = spread["seeds"].to_numpy() > 1  # row 1 trains nothing: equal on every machine
    for column in ("mIoU", "f-measure"):
        # Twice the seeds' standard deviation pooled over the trained rows: three seeds per row alone give
        # a std that can be off by a factor of three (row 2's f-measure: 0.21, the others 1.5 to 2.6).
        pooled = float(np.sqrt(np.mean(np.square(spread[f"{column} std"].to_numpy()[trained]))))
        tolerance = 0.0 if same_numerics else np.where(trained, 2 * pooled, 0.0)
        difference = (produced[column] - expected[column]).abs().to_numpy()
        assert (difference <= tolerance + 1e-9).all(), (same_numerics, pd.concat(
            [expected[["model", column]], produced[column].rename("now")], axis=1))


def test_every_metrics_file_has_per_class_iou_and_boundary_scores(pipeline_run):
    for metrics in (pipeline_run / "reports" / "tiny" / "metrics").glob("*.json"):
        scores = pd.read_json(metrics, typ="series")
        assert len(scores["per_class_iou"]) == len(class_names("tiny")) and 0 <= scores["miou"] <= 1, metrics.name
        assert len(scores["per_class_boundary"]) == len(class_names("tiny")), metrics.name
        assert 0 < scores["boundary_f"] <= 1, metrics.name


def dvc_would_run(work: Path, env: dict) -> set[str]:
    """Stages `dvc repro <target>` would run. Its dry run names only the stages whose own dependencies
    changed (it cannot know yet that their outputs will change), so their downstream stages are added
    from DVC's graph."""
    result = subprocess.run(["dvc", "repro", "--dry", TARGET_STAGE], cwd=work, env=env, capture_output=True,
                            text=True, check=True)
    stale = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}
    return dvc_downstream(work, stale, TARGET_STAGE)


KMEANS_METRICS = {f"metrics_kmeans@{model}" for model in
                  ("unsup_train_aug", "sup_train", "unsup_then_sup_train", "sup_train_aug_then_train")}
UNSUPERVISED_DOWNSTREAM = {"train_unsupervised@unsup_train_aug", "train_supervised@unsup_then_sup_train",
                           "prototype_bank_kmeans@unsup_train_aug", "metrics_kmeans@unsup_train_aug",
                           "prototype_bank_kmeans@unsup_then_sup_train", "metrics_kmeans@unsup_then_sup_train"}
ROW1 = {"prototype_bank_pseudo_segments@imagenet_lite0_pyramid", "metrics_pseudo_segments@imagenet_lite0_pyramid"}


@pytest.mark.parametrize("key, value, expected", [
    ("presets.tiny.inference.knn_k", 5, KMEANS_METRICS | {"metrics_pseudo_segments@imagenet_lite0_pyramid", "table3"}),
    ("presets.tiny.schedules.finetune.steps", 60, {"train_supervised@sup_train_aug_then_train", "table3",
                                      "prototype_bank_kmeans@sup_train_aug_then_train",
                                      "metrics_kmeans@sup_train_aug_then_train"}),
    ("pseudo_segments.max_regions", 40, {"pseudo_segments", "table3"} | UNSUPERVISED_DOWNSTREAM | ROW1),
])
def test_a_changed_parameter_reruns_the_same_stages_in_both_tools(pipeline_run, key, value, expected):
    """After the Snakemake run, DVC records the same results in its lock file (dvc commit, nothing is
    recomputed); then one parameter changes and both tools must want to rerun the same stages."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if not (pipeline_run / "dvc.lock").exists():
        assert snakemake_jobs(pipeline_run, forceall=False, targets=(TARGET,)) == {}
        subprocess.run(["git", "init", "-q"], cwd=pipeline_run, check=True)
        subprocess.run(["dvc", "commit", "--force", "--quiet", "--with-deps", TARGET_STAGE], cwd=pipeline_run,
                       env=env, check=True)
        # dvc commit copies outputs back from its cache, which makes them newer than what depends on them
        subprocess.run(["snakemake", "--touch", "--cores", "1", TARGET],
                       cwd=pipeline_run, env=env, check=True, capture_output=True)
    assert snakemake_jobs(pipeline_run, forceall=False, targets=(TARGET,)) == {}
    assert dvc_would_run(pipeline_run, env) == set()

    params_path = pipeline_run / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[leaf] = value
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        snakemake = set(snakemake_jobs(pipeline_run, forceall=False, targets=(TARGET,)))
        dvc = dvc_would_run(pipeline_run, env)
    finally:
        params_path.write_text(original)
    assert snakemake == dvc == expected
