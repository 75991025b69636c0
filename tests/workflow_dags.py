"""The Snakemake and DVC views of the pipeline, read with each tool's own API, and scratch checkouts to run
the tools in."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from workflow.jobs import pipeline_jobs, working_directory  # noqa: E402


def tool_env() -> dict:
    """The environment the tools run in: this one, with the virtual environment's commands first."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def copy_tracked_files(work: Path, skip: tuple[str, ...] = ()) -> Path:
    """Copy the files git tracks (but those under the `skip` prefixes) into `work`, a scratch checkout."""
    result = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True)
    for name in filter(None, result.stdout.split("\0")):
        if not name.startswith(skip):
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, work / name)
    return work


def snakemake_jobs(repo: Path, forceall: bool = True, targets: tuple[str, ...] = ()) -> dict:
    """Jobs of the targets (default: the default target), by DVC stage name: all of them (forceall), or
    only those Snakemake would run now."""
    return {job.name: {"cmd": job.cmd, "deps": sorted(job.inputs), "outs": sorted([*job.outputs.values(), *job.logs]),
                       "params": sorted(job.params)} for job in pipeline_jobs(repo, targets, forceall)}


def dvc_stages(repo: Path) -> dict:
    """Every stage of dvc.yaml (metrics and plots files count as outputs)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    stages = {}
    with working_directory(repo):
        for stage in Repo(str(repo)).index.stages:
            params = [key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params]
            stages[stage.addressing] = {
                "cmd": " ".join(stage.cmd.split()),
                "deps": sorted(dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)),
                "outs": sorted(out.def_path for out in stage.outs), "params": sorted(params)}
    return stages


def dvc_downstream(repo: Path, addresses: set[str], targets: tuple[str, ...]) -> set[str]:
    """The given DVC stages and every stage that depends on them, directly or not, among the stages
    `dvc repro <targets>` runs (the targets and what they depend on), in DVC's own graph."""
    import networkx as nx
    from dvc.repo import Repo

    with working_directory(repo):
        graph = Repo(str(repo)).index.graph  # edges point from a stage to the stages it depends on
        by_address = {stage.addressing: stage for stage in graph.nodes}
        upstream = {stage for target in targets for stage in [by_address[target],
                                                             *nx.descendants(graph, by_address[target])]}
        downstream = {stage for address in addresses for stage in [by_address[address],
                                                                   *nx.ancestors(graph, by_address[address])]}
        return {stage.addressing for stage in downstream & upstream}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def dvc(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    """Runs a dvc command in `repo`; with `ok`, fails the test with its output unless it succeeds."""
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=tool_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0 or not ok, f"dvc {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def git_checkout(work: Path, tiny: dict | None = None) -> Path:
    """A scratch git repository of the tracked files (but tests/ and the tiny reports), committed: DVC's
    experiments need a commit to start from. `tiny` overrides params.yaml's tiny-dataset settings."""
    repo = copy_tracked_files(work, skip=("tests/", "reports/tiny/"))
    if tiny:
        params_path = repo / "params.yaml"
        params = yaml.safe_load(params_path.read_text())
        params["tiny"].update(tiny)
        params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "test")
    git(repo, "config", "user.email", "test@example.com")
    commit(repo, "scratch checkout")
    return repo


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
