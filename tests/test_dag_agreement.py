"""Snakemake and DVC describe the same DAG: same stages, commands, dependencies, parameters and outputs.
dvc.yaml is written from the Snakemake workflow (scripts/write_dvc_yaml.py); these tests prove that the
committed file is that rendering, and that DVC reads it back as the jobs Snakemake plans."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workflow_dags import REPO, copy_tracked_files, dvc_stages, snakemake_jobs


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    """Both DAGs of a scratch checkout."""
    work = tmp_path_factory.mktemp("agreement")
    repo = copy_tracked_files(work / "repo", skip=("tests/",))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)  # DVC wants a git repository
    return snakemake_jobs(repo), dvc_stages(repo)


def run_script(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "scripts/write_dvc_yaml.py", *args], cwd=repo, env=env,
                          capture_output=True, text=True)


def test_the_committed_dvc_yaml_is_written_from_the_workflow():
    """Fails when workflow/ or params.yaml changed and dvc.yaml was not rewritten."""
    result = run_script(REPO, "--check")
    assert result.returncode == 0, result.stderr


def test_a_new_sweep_value_in_params_yaml_is_planned_by_both_tools(tmp_path):
    """A value added to inference_sweep.knn_k, in params.yaml only: Snakemake's sweep job makes its metrics
    at once; the staleness check names the jobs it changes; rewritten, dvc.yaml's sweep stage makes them."""
    repo = copy_tracked_files(tmp_path / "repo", skip=("tests/",))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    before_snakemake, before_dvc = snakemake_jobs(repo), dvc_stages(repo)
    params_path = repo / "params.yaml"
    text = params_path.read_text()
    params_path.write_text(text.replace("knn_k: [1, 5, 11, 21, 31]", "knn_k: [1, 5, 11, 21, 31, 41]", 1))
    assert yaml.safe_load(params_path.read_text())["inference_sweep"]["knn_k"][-1] == 41
    new = {f"reports/tiny/sweeps/inference/{iterations}-41.json" for iterations in (2, 4, 10)}
    after_snakemake = snakemake_jobs(repo)
    assert set(after_snakemake) == set(before_snakemake)
    outs = {name: set(job["outs"]) - set(before_snakemake[name]["outs"]) for name, job in after_snakemake.items()}
    assert {name: added for name, added in outs.items() if added} == {"inference_sweep": new}
    check = run_script(repo, "--check")
    assert check.returncode == 1 and all(name in check.stderr for name in ["inference_sweep", "fig13_knn", "table4"]), check.stderr
    assert run_script(repo).returncode == 0
    after_dvc = dvc_stages(repo)
    assert set(after_dvc) == set(before_dvc)
    assert set(after_dvc["inference_sweep"]["outs"]) - set(before_dvc["inference_sweep"]["outs"]) == new
    assert run_script(repo, "--check").returncode == 0


def test_same_stages(dags):
    snakemake, dvc = dags
    assert sorted(snakemake) == sorted(dvc)


def test_same_commands_deps_params_and_outs(dags):
    snakemake, dvc = dags
    for name in sorted(set(snakemake) & set(dvc)):
        assert snakemake[name] == dvc[name], name


def test_stage_commands_call_the_stage_entry_points(dags):
    """Every command is `python stages/<entry point>.py ...`; training may be launched by torchrun instead."""
    _, dvc = dags
    launcher = yaml.safe_load((REPO / "params.yaml").read_text())["train_launcher"]
    for name, stage in dvc.items():
        trains = name.startswith(("train_", "replicate_")) and "stages/train.py" in stage["cmd"]
        prefix = f"{launcher} stages/" if trains else "python stages/"
        script = stage["cmd"][len(prefix) - len("stages/"):].split()[0]
        assert stage["cmd"].startswith(prefix) and (REPO / script).is_file(), name


@pytest.mark.parametrize("override", [["--config", "dataset=voc2012"], ["--config", "checkpoint_every=10"]])
def test_a_config_override_is_refused_since_the_stages_would_not_see_it(tmp_path, override):
    """Stages read params.yaml: a Snakemake --config value would rerun jobs that still use the file's value."""
    repo = copy_tracked_files(tmp_path / "repo", skip=("tests/", "reports/"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["snakemake", "-n", "--cores", "1", *override], cwd=repo, env=env,
                            capture_output=True, text=True)
    key = override[1].split("=")[0]
    assert result.returncode != 0 and f"--config/--configfile override {key}" in result.stderr + result.stdout
    assert not (repo / "data").exists()


@pytest.mark.slow
def test_a_replicate_training_job_runs_its_own_run(tmp_path):
    """Snakemake formats a shell command when the job runs, after the loop that defined the rules: each
    replicate_<run> must still launch its own run (with --segments for the unsupervised one). The launcher
    is replaced by `echo`, so the job prints its command instead of training."""
    repo = copy_tracked_files(tmp_path / "repo", skip=("tests/", "reports/"))
    params_path = repo / "params.yaml"
    text = params_path.read_text()
    text = text.replace("replicate_seeds: []", "replicate_seeds: [1]", 1).replace("train_launcher: python", "train_launcher: echo", 1)
    params_path.write_text(text)
    for path in ("data/tiny/dataset", "data/tiny/pseudo_segments"):
        (repo / path).mkdir(parents=True)
    init = repo / "data/tiny/seeds/1/models/imagenet_lite0_pyramid/model.pt"
    init.parent.mkdir(parents=True)
    init.touch()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["snakemake", "--cores", "1", "data/tiny/seeds/1/models/unsup_train_aug/model.pt",
                             "--allowed-rules", "replicate_unsup_train_aug"], cwd=repo, env=env,
                            capture_output=True, text=True)
    printed = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("stages/train.py")]
    assert len(printed) == 1, result.stdout + result.stderr
    assert "--run unsup_train_aug --set seed=1" in printed[0]
    assert "--segments data/tiny/pseudo_segments" in printed[0]
