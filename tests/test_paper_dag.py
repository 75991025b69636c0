"""With `dataset: voc2012` or `cityscapes` and no data on disk, both tools plan the paper's whole DAG
(issue 7): the same stages, commands, dependencies, parameters and outputs in each, every path under
data/<dataset>/ and reports/<dataset>/, and `dvc repro --dry --force` lists every stage. (Without
--force, DVC 3.67's dry run looks each stage up in its run cache, which hashes the dependencies, and stops
at the first missing one; on a fresh checkout every stage runs anyway.)"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow.jobs import pipeline_jobs
from workflow_dags import copy_tracked_files, dvc_stages, snakemake_jobs


REPO = Path(__file__).resolve().parents[1]
PAPER_DATASETS = ("voc2012", "cityscapes")


@pytest.fixture(scope="module", params=PAPER_DATASETS)
def paper_repo(request, tmp_path_factory):
    dataset = request.param
    repo = copy_tracked_files(tmp_path_factory.mktemp(dataset) / "repo", skip=("tests/", "reports/tiny/"))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)  # DVC wants a git repository
    params_path = repo / "params.yaml"
    params_path.write_text(params_path.read_text().replace("dataset: tiny ", f"dataset: {dataset} ", 1))
    assert yaml.safe_load(params_path.read_text())["dataset"] == dataset
    return repo


def test_every_preset_defines_the_schedules_of_every_run():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    named = {run["schedule"] for group in ("unsupervised_runs", "supervised_runs", "softmax_runs")
             for run in params[group].values()}
    for dataset, preset in params["presets"].items():
        assert named <= set(preset["schedules"]), (dataset, named - set(preset["schedules"]))
        for name, schedule in preset["schedules"].items():
            assert schedule["steps"] == 0 or {"lr", "batch_size", "crop"} <= set(schedule), (dataset, name)


@pytest.mark.slow
def test_both_tools_plan_the_same_paper_dag(paper_repo):
    dataset = yaml.safe_load((paper_repo / "params.yaml").read_text())["dataset"]
    snakemake, dvc = snakemake_jobs(paper_repo), dvc_stages(paper_repo)
    assert sorted(snakemake) == sorted(dvc)
    for name in snakemake:
        assert snakemake[name] == dvc[name], name
    outputs = [out for job in snakemake.values() for out in job["outs"]]
    shared = ("reports/pseudo_segments_quality.csv",)  # made from the real samples, not from a dataset
    assert all(out.startswith((f"data/{dataset}/", f"reports/{dataset}/")) or out in shared for out in outputs)
    assert f"reports/{dataset}/table2.csv" in outputs and f"data/{dataset}/dataset" in outputs


@pytest.mark.slow
def test_dvc_dry_run_lists_every_stage_without_the_data(paper_repo):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["dvc", "repro", "--dry", "--force"], cwd=paper_repo, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    planned = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}
    assert planned == set(dvc_stages(paper_repo))


def test_slurm_profiles_size_rules_that_exist_and_retry_only_training(paper_repo):
    """Both profiles retry alike: a training job (it keeps a resume state) once, any other job never;
    the cluster's one gives every training rule a GPU, the local one asks for no GPU at all."""
    cluster, local = (yaml.safe_load((paper_repo / f"workflow/profiles/{name}/config.yaml").read_text())
                      for name in ("slurm", "slurm-local"))
    jobs = pipeline_jobs(paper_repo, (), forceall=True)
    rules = {job.rule for job in jobs}
    training = {job.rule for job in jobs if "stages/train.py" in job.cmd}
    for profile in (cluster, local):
        assert profile["executor"] == "slurm" and profile["retries"] == 0
        assert set(profile["preemptible-rules"]) == training and profile["preemptible-retries"] == 1
        assert profile["slurm-status-command"] == "squeue"  # sacct's "CANCELLED by <uid>" would hang the run
    assert set(cluster["set-resources"]) <= rules
    assert all(cluster["set-resources"][rule]["gpu"] >= 1 for rule in training)
    assert "set-resources" not in local and "gpu" not in local["default-resources"]


DESIGN_CARD_COMMAND = ["snakemake", "--cores", "8", "reports/table3.csv"]  # the users' own usage line


def test_the_design_card_command_builds_the_active_datasets_table(paper_repo):
    """`snakemake --cores 8 reports/table3.csv`, verbatim (as a dry run): the active dataset's Table 3, copied
    from reports/<dataset>/table3.csv; DVC's target for the same table is its stage, `table3`."""
    dataset = yaml.safe_load((paper_repo / "params.yaml").read_text())["dataset"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    planned = subprocess.run([*DESIGN_CARD_COMMAND, "--dry-run"], cwd=paper_repo, env=env, capture_output=True,
                             text=True)
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert "rule active_dataset_table" in planned.stdout and f"input: reports/{dataset}/table3.csv" in planned.stdout
    assert "rule table3:" in planned.stdout
    dvc = subprocess.run(["dvc", "repro", "--dry", "--force", "table3"], cwd=paper_repo, env=env, capture_output=True,
                         text=True)
    assert dvc.returncode == 0, dvc.stderr[-2000:]
    assert "Running stage 'table3'" in dvc.stdout
