"""Every table, the rendered tables, the headline metrics and the sweeps' curves (Figures 11-13, CSV and
PNG), rebuilt from the committed per-model results (reports/metrics, reports/sweeps, reports/submissions,
the latency benchmark) by the DAG's own commands, equal the committed files exactly: the numbers a reader
sees are the ones the results give."""
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_dags import REPO, copy_tracked_files, snakemake_jobs

pytestmark = pytest.mark.slow  # every table assembly job of the DAG

# jobs that only assemble committed results
ASSEMBLED = ("table", "tables_markdown", "headline_metrics", "fig11_clusters", "fig12_embedding_dim", "fig13_knn")


@pytest.fixture(scope="module")
def assembly_jobs(tmp_path_factory):
    work = copy_tracked_files(tmp_path_factory.mktemp("tables") / "repo", skip=("tests/",))
    jobs = snakemake_jobs(work)
    return work, {name: job for name, job in jobs.items() if name.startswith(ASSEMBLED)}


def test_every_table_is_assembled(assembly_jobs):
    _, jobs = assembly_jobs
    assert {f"table{n}" for n in range(1, 10)} <= set(jobs)


def test_rebuilt_tables_equal_the_committed_ones(assembly_jobs):
    work, jobs = assembly_jobs
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    order = sorted(jobs, key=lambda name: name.startswith(("tables_markdown", "headline")))  # tables first
    for name in order:
        for out in jobs[name]["outs"]:
            if out.startswith("reports/"):
                (work / out).unlink()
        subprocess.run(shlex.split(jobs[name]["cmd"]), cwd=work, env=env, check=True, capture_output=True)
        for out in jobs[name]["outs"]:
            if out.startswith("reports/"):
                assert (work / out).read_bytes() == (REPO / out).read_bytes(), out
