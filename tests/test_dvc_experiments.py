"""DVC's experiment workflow as DVC users run it, in scratch git checkouts: `dvc exp run -S` on one stage,
then `dvc exp show` and `dvc metrics diff`; git-tracked reports that outlive a stage that fails; and the
docs/running.md's `dvc commit` after a Snakemake run."""
import json
import subprocess
import sys

import pytest
import yaml

from workflow_dags import REPO, commit, dvc, git_checkout, tool_env

# The cheapest chain that ends in a metrics file: the dataset, the ImageNet model and its unsupervised
# evaluation (no training, no HED); with 3 images per split it takes seconds a stage.
STAGE = "unsupervised_metrics-imagenet_lite0_pyramid"
METRICS = "reports/tiny/metrics/unsupervised/imagenet_lite0_pyramid.json"
PARAM = "evaluation.unsupervised_protocols.probe_epochs"
SMALL_TINY = {"num_train": 3, "num_train_aug": 3, "num_val": 3, "num_test": 1, "min_size": 96, "max_size": 128}


def declared_outputs(stages: dict):
    """(stage, kind, path, options) of every output dvc.yaml declares: outs, metrics and plots."""
    for name, stage in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                yield name, kind, path, options


def test_reports_are_persisted_uncached_outputs_and_their_json_files_metrics():
    """DVC deletes a stage's outputs before running it, unless they are `persist`: every report (under
    reports/, versioned by git) is, so that a failed or interrupted run leaves it as git has it. Every
    JSON report is a DVC metrics file, so that `dvc exp show` has the metrics of the stage just run."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    reports = [(name, kind, path, options) for name, kind, path, options in declared_outputs(stages)
               if path.startswith("reports/")]
    assert reports
    for name, kind, path, options in reports:
        assert options.get("cache") is False and options.get("persist") is True, (name, path, options)
        assert (kind == "metrics") == path.endswith(".json"), (name, kind, path)
    metrics_stages = {name.split("-")[0] for name, kind, *_ in reports if kind == "metrics"}
    assert {"metrics_kmeans", "metrics_softmax", "metrics_pseudo_segments", "headline_metrics"} <= metrics_stages


def test_a_failed_stage_leaves_its_git_tracked_report(tmp_path):
    """The stage's command fails (a value out of range in params.yaml): the report it would rewrite is
    still the committed one, and git sees no change under reports/."""
    repo = git_checkout(tmp_path / "repo")
    report = repo / "reports/pseudo_segments_quality.csv"
    committed = report.read_bytes()
    params_path = repo / "params.yaml"
    params_path.write_text(params_path.read_text().replace("max_regions: 48", "max_regions: 300", 1))
    result = dvc(repo, "repro", "pseudo_segments_quality", ok=False)
    assert result.returncode != 0 and "pseudo_segments.max_regions" in result.stdout + result.stderr
    assert report.read_bytes() == committed
    status = subprocess.run(["git", "status", "--porcelain", "reports/"], cwd=repo, capture_output=True, text=True)
    assert status.stdout == ""


def test_dvc_exp_show_only_changed_runs(tmp_path):
    """`dvc exp show` names a params key and a dependency by their names, without telling them apart: a
    key named like a dependency path made two columns of one name, and `--only-changed` failed
    (KeyError) dropping them. The checkout's table must work."""
    repo = git_checkout(tmp_path / "repo")
    dvc(repo, "exp", "show", "--only-changed", "--no-pager")


def test_dvc_commit_of_what_a_snakemake_run_built(tmp_path):
    """docs/running.md's advice after a Snakemake run: scripts/dvc_commit_built.py records the stages whose
    files all exist (here the dataset's alone) in dvc.lock, where a plain `dvc commit` fails."""
    repo = git_checkout(tmp_path / "repo", tiny=SMALL_TINY)
    (repo / "dvc.lock").unlink()  # the committed run's lock: this checkout's starts empty
    built = subprocess.run(["snakemake", "--cores", "1", "data/tiny/dataset"], cwd=repo, env=tool_env(),
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "does not exist" in dvc(repo, "commit", "--force", ok=False).stderr
    result = subprocess.run([sys.executable, "scripts/dvc_commit_built.py"], cwd=repo, env=tool_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(yaml.safe_load((repo / "dvc.lock").read_text())["stages"]) == ["dataset"]
    assert "dataset" not in dvc(repo, "status", "dataset").stdout  # up to date: nothing to report


@pytest.mark.slow
def test_a_single_stage_experiment_shows_its_param_and_metrics(tmp_path):
    """A baseline run of one chain, committed; then `dvc exp run -S` of its last stage, as docs/running.md says.
    The experiment reruns that stage only, rewrites its (persisted) metrics file, and `dvc exp show`,
    `--only-changed` and `dvc metrics diff` show the new parameter value and the metrics it made."""
    repo = git_checkout(tmp_path / "repo", tiny=SMALL_TINY)
    dvc(repo, "repro", STAGE)
    commit(repo, "baseline")
    baseline_metrics = json.loads((repo / METRICS).read_text())

    run = dvc(repo, "exp", "run", "-S", f"{PARAM}=5", STAGE)
    assert f"Running stage '{STAGE}'" in run.stdout and "Running stage 'dataset'" not in run.stdout, run.stdout
    new_metrics = json.loads((repo / METRICS).read_text())  # the experiment's results, applied to the workspace
    assert new_metrics["settings"]["probe_epochs"] == 5 and baseline_metrics["settings"]["probe_epochs"] == 50

    rows = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    baseline = next(row for row in rows if row["rev"] != "workspace")
    [experiment] = [rev for exp in baseline["experiments"] for rev in exp["revs"]]

    def param(row):
        return row["data"]["params"]["params.yaml"]["data"]["evaluation"]["unsupervised_protocols"]["probe_epochs"]

    def metrics(row):
        shown = row["data"]["metrics"][METRICS]["data"]
        return shown["probe_miou"], shown["settings"]

    assert (param(baseline), param(experiment)) == (50, 5)
    assert metrics(baseline) == (baseline_metrics["probe_miou"], baseline_metrics["settings"])
    assert metrics(experiment) == (new_metrics["probe_miou"], new_metrics["settings"])

    table = dvc(repo, "exp", "show", "--only-changed", "--csv").stdout
    header = table.splitlines()[0].split(",")  # a metric is named `<file>:<key>` where another file has the key
    assert PARAM in header and "seed" not in header, header
    assert any(column.split(":")[-1] == "settings.probe_epochs" for column in header), header

    diff = json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    assert diff[METRICS]["settings.probe_epochs"] == {"old": 50, "new": 5, "diff": -45}
