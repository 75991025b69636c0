"""Snakemake and DVC describe the same DAG: same stages, commands, dependencies, parameters and outputs."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def snakemake_jobs() -> dict:
    """Every job Snakemake would run for the default target, from its own DAG (nothing is executed)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow_api = api.workflow(snakefile=REPO / "workflow" / "Snakefile",
                                    resource_settings=ResourceSettings(cores=1), workdir=REPO)
        workflow = workflow_api.dag(dag_settings=DAGSettings(forceall=True)).workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        jobs = {}
        for job in workflow.dag.jobs:
            if job.rule.name == "all":
                continue
            name = "@".join([job.rule.name, *job.wildcards_dict.values()])
            jobs[name] = {"cmd": " ".join(job.shellcmd.split()), "deps": sorted(map(str, job.input)),
                          "outs": sorted(map(str, [*job.output, *job.log])), "params": sorted(job.params.tracked)}
        return jobs


def dvc_stages() -> dict:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    stages = {}
    for stage in Repo(str(REPO)).index.stages:
        params = [key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params]
        stages[stage.addressing] = {
            "cmd": " ".join(stage.cmd.split()),
            "deps": sorted(dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)),
            "outs": sorted(out.def_path for out in stage.outs), "params": sorted(params)}  # metrics are outs too
    return stages


@pytest.fixture(scope="module")
def dags():
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return snakemake_jobs(), dvc_stages()
    finally:
        os.chdir(cwd)


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
