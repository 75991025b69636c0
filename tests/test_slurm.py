"""The DAG on a real scheduler: the one-node SLURM cluster of scripts/slurm_local.sh, through the profile
workflow/profiles/slurm-local, as pipeline_runs.py runs it from the session's start. That the tiny Table 3
(seed 0) made there is the committed one is test_tiny_pipeline.py's check; here: every job was a
SLURM job, the training cancelled mid-run was resubmitted by the profile and resumed from its checkpoint
with its log and TensorBoard events whole, and a job given a corrupt mask failed once, with its message.

Without the cluster (SLURM, munge and MariaDB not installed, and no root to install them) these tests are
skipped and the DAG runs locally; as root with apt-get, a cluster that does not start fails them."""
import os
import shutil
from collections import Counter

import pandas as pd
import pytest

from pipeline_runs import CANCELLED, CORRUPT_MASK, TARGETS
from test_training import tensorboard_losses
from workflow.jobs import pipeline_jobs

pytestmark = pytest.mark.slow  # the tiny DAG's Table 3, seed 0


@pytest.fixture(scope="module")
def cluster(tiny_pipeline, pipeline_run):
    """The run's record of the cluster (pipeline_runs.ClusterRecord)."""
    if tiny_pipeline.problem:
        could_install = os.geteuid() == 0 and shutil.which("apt-get")
        (pytest.fail if could_install else pytest.skip)(f"no local SLURM cluster: {tiny_pipeline.problem}")
    return tiny_pipeline.result().cluster


def rule_of(comment: str, rules: set[str]) -> str:
    """The rule named by the executor plugin's job comment, rule_<rule> or rule_<rule>_wildcards_<values>."""
    (rule,) = [rule for rule in rules if comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_")]
    return rule


def test_every_job_of_the_dag_ran_as_a_slurm_job(cluster, pipeline_run):
    planned = Counter(job.rule for job in pipeline_jobs(pipeline_run, TARGETS, forceall=True))
    completed = Counter(rule_of(row["Comment"], set(planned)) for row in cluster.jobs if row["State"] == "COMPLETED")
    assert completed == planned
    others = [(rule_of(row["Comment"], set(planned)), row["State"].split()[0]) for row in cluster.jobs
              if row["State"] != "COMPLETED"]
    assert others == [(CANCELLED[0], "CANCELLED")], cluster.jobs  # "CANCELLED by <uid>"


def test_the_cancelled_training_was_resubmitted_and_resumed_from_its_checkpoint(cluster, pipeline_run, params):
    rule, run = CANCELLED
    assert cluster.cancelled_job is not None
    jobs = [row for row in cluster.jobs if row["Comment"] == f"rule_{rule}_wildcards_{run}"]
    assert len(jobs) == 2 and jobs[0]["JobID"] == cluster.cancelled_job
    resubmitted_log = pipeline_run / f".snakemake/slurm_logs/rule_{rule}/{run}/{jobs[1]['JobID']}.log"
    checkpoint = params["checkpoint_every"]
    assert f"resuming from step {checkpoint} (" in resubmitted_log.read_text()
    steps = params["schedules"][params["supervised_runs"][run]["schedule"]]["steps"]
    log = pd.read_csv(pipeline_run / f"reports/tiny/training/{run}.csv")
    assert log["step"].tolist() == list(range(1, steps + 1))
    events = tensorboard_losses(pipeline_run / f"data/tiny/logs/tensorboard/{run}")
    assert [step for step, _ in events] == list(range(1, steps + 1))
    assert [loss for _, loss in events] == pytest.approx(log["loss"].tolist(), abs=1e-6)


def test_a_job_given_a_corrupt_mask_fails_once_with_the_stage_message(cluster):
    assert cluster.broken_dataset_result.returncode != 0
    (job,) = cluster.broken_dataset_jobs  # not resubmitted
    assert job["State"] == "FAILED" and job["Comment"] == "rule_dataset"
    repo = cluster.broken_dataset_repo
    slurm_log = (repo / f".snakemake/slurm_logs/rule_dataset/{job['JobID']}.log").read_text()
    mask = repo.parent / "mine" / CORRUPT_MASK
    assert f"{mask}: cannot decode" in slurm_log, slurm_log[-3000:]
    assert "Traceback" not in slurm_log
    assert not (repo / "data/mine/dataset").exists()
