"""Snakemake and DVC describe the same DAG: same stages, commands, dependencies, parameters and outputs."""
from pathlib import Path

import pytest
import yaml

from workflow_dags import dvc_stages, snakemake_jobs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dags():
    return snakemake_jobs(REPO), dvc_stages(REPO)


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
        prefix = f"{launcher} stages/" if name.startswith("train_") else "python stages/"
        script = stage["cmd"][len(prefix) - len("stages/"):].split()[0]
        assert stage["cmd"].startswith(prefix) and (REPO / script).is_file(), name
