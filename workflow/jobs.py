"""The pipeline's job list, as Snakemake plans it from workflow/Snakefile and params.yaml.

This is the one description of the DAG: scripts/write_dvc_yaml.py writes dvc.yaml from it, the stage-time
estimate (benchmarks/stage_times.py) prices it, and the tests compare it with what DVC reads back.

    from workflow.jobs import pipeline_jobs      # with the repository root on sys.path
    jobs = pipeline_jobs(Path("."))               # every job of the default target

Snakemake 9 has no public call that lists a DAG's jobs with their commands (`--dag` and `--summary` print
other things), so `pipeline_jobs` reads its DAG object; it is the only place that does (snakemake is pinned
in requirements.txt).
"""
import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    """One job: a rule with its wildcards bound. `name` is the job's DVC stage name."""
    name: str
    rule: str
    cmd: str                 # the shell command, whitespace collapsed
    inputs: tuple[str, ...]
    outputs: dict[str, str]  # output name (its position, for unnamed ones) -> path
    logs: tuple[str, ...]
    params: tuple[str, ...]  # dotted params.yaml keys the job tracks (`params.tracked` of its rule)
    curve_axes: tuple[str, str] | None  # a curve output's (x, y) columns (`params.curve_axes` of its rule)


def stage_name(rule: str, wildcards: dict[str, str]) -> str:
    """The DVC stage of a job: its rule, then its wildcard values (DVC allows only `_` and `-` in names)."""
    return "-".join([rule, *wildcards.values()])


@contextlib.contextmanager
def working_directory(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def pipeline_jobs(repo: Path, targets: tuple[str, ...] = (), forceall: bool = True) -> list[Job]:
    """Jobs of `targets` (default: the Snakefile's default target) in the checkout `repo`: all of them
    (forceall), or only those Snakemake would run now. Nothing is executed."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

    repo = Path(repo).resolve()
    with working_directory(repo), SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(snakefile=repo / "workflow" / "Snakefile",
                                    resource_settings=ResourceSettings(cores=1), workdir=repo)
        dag_api = workflow_api.dag(dag_settings=DAGSettings(forceall=forceall, targets=set(targets)))
        workflow = dag_api.workflow_api._workflow  # no public accessor (module docstring)
        workflow._prepare_dag(forceall=forceall, ignore_incomplete=True, lock_warn_only=True)
        workflow._build_dag()
        jobs = []
        for job in workflow.dag.needrun_jobs():
            if job.rule.name == "all":
                continue
            wildcards = {name: str(value) for name, value in job.wildcards_dict.items()}
            names = {start: name for name, (start, _) in job.output._names.items()}
            outputs = {names.get(i, str(i)): str(path) for i, path in enumerate(job.output)}
            params = dict(job.params.items())
            axes = params.get("curve_axes")
            jobs.append(Job(name=stage_name(job.rule.name, wildcards), rule=job.rule.name,
                            cmd=" ".join(job.shellcmd.split()), inputs=tuple(map(str, job.input)),
                            outputs=outputs, logs=tuple(map(str, job.log)),
                            params=tuple(params.get("tracked", {})), curve_axes=tuple(axes) if axes else None))
        return sorted(jobs, key=lambda job: job.name)


def dataset_jobs(repo: Path, dataset: str) -> list[Job]:
    """Every job of the default target with `dataset` selected in params.yaml. Snakemake refuses
    --config overrides (the stages would not see them), so the DAG is planned in a scratch folder that
    links to the checkout's files, with its own params.yaml."""
    repo = Path(repo).resolve()
    text = (repo / "params.yaml").read_text()
    selected, count = re.subn(r"^dataset: *\S+", f"dataset: {dataset}", text, count=1, flags=re.M)
    if count != 1:
        raise ValueError(f"{repo / 'params.yaml'}: no top-level `dataset:` line to select {dataset!r} with")
    if selected == text:
        return pipeline_jobs(repo)
    with tempfile.TemporaryDirectory(prefix="segsort-dag-") as scratch:
        scratch = Path(scratch)
        for entry in repo.iterdir():
            if entry.name not in ("params.yaml", ".snakemake", ".git"):
                (scratch / entry.name).symlink_to(entry)
        (scratch / "params.yaml").write_text(selected)
        return pipeline_jobs(scratch)
