"""With `dataset: voc2012` and no data on disk, both tools plan the paper's whole DAG (issue 7): the same
stages, commands, dependencies, parameters and outputs in each, every path under data/voc2012/ and
reports/voc2012/, and `dvc repro --dry --force` lists every stage. (Without --force, DVC 3.67's dry run
looks each stage up in its run cache, which hashes the dependencies, and stops at the first missing one;
on a fresh checkout every stage runs anyway.)"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_dags import copy_tracked_files, dvc_stages, snakemake_jobs


@pytest.fixture(scope="module")
def voc_repo(tmp_path_factory):
    repo = copy_tracked_files(tmp_path_factory.mktemp("voc") / "repo", skip=("tests/", "reports/tiny/"))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)  # DVC wants a git repository
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    (repo / params["real_samples"]).mkdir(parents=True)
    params_path.write_text(params_path.read_text().replace("dataset: tiny ", "dataset: voc2012 ", 1))
    assert yaml.safe_load(params_path.read_text())["dataset"] == "voc2012"
    return repo


def test_both_tools_plan_the_same_voc2012_dag(voc_repo):
    snakemake, dvc = snakemake_jobs(voc_repo), dvc_stages(voc_repo)
    assert sorted(snakemake) == sorted(dvc)
    for name in snakemake:
        assert snakemake[name] == dvc[name], name
    outputs = [out for job in snakemake.values() for out in job["outs"]]
    shared = ("reports/pseudo_segments_quality.csv",)  # made from the real samples, not from a dataset
    assert all(out.startswith(("data/voc2012/", "reports/voc2012/")) or out in shared for out in outputs)
    assert "reports/voc2012/table1.csv" in outputs and "data/voc2012/dataset" in outputs


def test_dvc_dry_run_lists_every_stage_without_the_data(voc_repo):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["dvc", "repro", "--dry", "--force"], cwd=voc_repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    planned = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}
    assert planned == set(dvc_stages(voc_repo))


def test_slurm_profile_sizes_rules_that_exist(voc_repo):
    profile = yaml.safe_load((voc_repo / "workflow/profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    rules = {name.split("@")[0] for name in snakemake_jobs(voc_repo)}
    assert set(profile["set-resources"]) <= rules
    training = {"train_unsupervised", "train_supervised", "train_softmax", "ablation_grid", "ablation_embedding_dim"}
    assert all(profile["set-resources"][rule]["gpu"] >= 1 for rule in training)
