"""Snakemake and DVC describe the same DAG: same stages, commands, dependencies, parameters and outputs."""
from pathlib import Path

import pytest

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
    _, dvc = dags
    for name, stage in dvc.items():
        script = stage["cmd"].split()[1]
        assert stage["cmd"].startswith("python stages/") and (REPO / script).is_file(), name
