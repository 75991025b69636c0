"""The suite's long run: Table 3 of the tiny DAG, seed 0 (its five rows), which test_tiny_pipeline.py
compares with the committed results, run on the one-node SLURM cluster of scripts/slurm_local.sh through the profile
workflow/profiles/slurm-local when that cluster starts here (Debian's packages, as root), else by
Snakemake alone.

It starts with the session (conftest.py) and runs beside the other tests, which mostly keep one core busy,
and the tests that read it wait for it. On the cluster it first meets two faults, which test_slurm.py checks:
- a dataset of one's own with a corrupt mask: its dataset job must fail once, with the stage's message;
- in the DAG, the supervised training is cancelled (scancel) right after its first resume state is
  saved: the profile must resubmit it, and it must resume from that step.
"""
from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from workflow_dags import copy_tracked_files, tool_env

REPO = Path(__file__).resolve().parents[1]
PROFILE = "workflow/profiles/slurm-local"
MODELS = ("imagenet_lite0_pyramid", "unsup_train_aug", "sup_train", "unsup_then_sup_train",
          "sup_train_aug_then_train")  # Table 3's rows 1-5
TARGETS = tuple(f"reports/tiny/metrics/{model}.json" for model in MODELS)
CANCELLED = ("train_supervised", "sup_train")  # the rule and run whose job is cancelled mid-run
CORRUPT_MASK = "SegmentationClass/img1.png"


@dataclass
class ClusterRecord:
    """What happened on the cluster: its sacct rows for the run's jobs (JobID, Comment, State, ExitCode,
    Elapsed), the cancelled job's id, and the broken dataset's run."""
    jobs: list[dict] = field(default_factory=list)
    cancelled_job: str | None = None
    broken_dataset_result: subprocess.CompletedProcess | None = None
    broken_dataset_jobs: list[dict] = field(default_factory=list)
    broken_dataset_repo: Path | None = None


@dataclass
class PipelineRun:
    work: Path
    result: subprocess.CompletedProcess
    cluster: ClusterRecord | None  # None: the run was local


def start_local_cluster() -> tuple[bool, str]:
    """Starts scripts/slurm_local.sh's cluster from this checkout. Returns (started here, problem): a
    cluster that already runs is used and left running; problem is the script's message when it cannot start."""
    running = subprocess.run(["bash", "scripts/slurm_local.sh", "status"], cwd=REPO, capture_output=True).returncode == 0
    if running:
        return False, ""
    result = subprocess.run(["bash", "scripts/slurm_local.sh", "start"], cwd=REPO, capture_output=True, text=True)
    return result.returncode == 0, "" if result.returncode == 0 else (result.stderr or result.stdout).strip()


def stop_local_cluster() -> None:
    subprocess.run(["bash", "scripts/slurm_local.sh", "stop"], cwd=REPO, check=True, capture_output=True)


def sacct_jobs(work: Path, since: datetime) -> list[dict]:
    """The cluster's jobs submitted from `work` since `since`, in submission order."""
    fields = ["JobID", "Comment", "State", "ExitCode", "Elapsed", "WorkDir"]
    listing = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", f"--format={','.join(fields)}",
                              f"--starttime={since:%Y-%m-%dT%H:%M:%S}"], capture_output=True, text=True, check=True)
    rows = [dict(zip(fields, line.split("|"))) for line in listing.stdout.splitlines()]
    return [row for row in rows if row["WorkDir"] == str(work)]


def cancel_after_first_checkpoint(work: Path, process: subprocess.Popen, record: ClusterRecord) -> None:
    """Waits for the cancelled run's resume state, then scancels its job."""
    rule, run = CANCELLED
    resume = work / f"data/tiny/models/{run}/model.resume.pt"
    while process.poll() is None and not resume.is_file():
        time.sleep(0.5)
    queue = subprocess.run(["squeue", "--noheader", "--format=%i|%k|%Z"], capture_output=True, text=True,
                           check=True).stdout
    for line in queue.splitlines():
        job_id, comment, workdir = line.split("|")
        if comment == f"rule_{rule}_wildcards_{run}" and workdir == str(work):
            subprocess.run(["scancel", job_id], check=True)
            record.cancelled_job = job_id


def broken_dataset_repo(work: Path) -> Path:
    """A scratch checkout whose dataset is a folder of one's own with one corrupt mask."""
    folder = work / "mine"
    (folder / "JPEGImages").mkdir(parents=True)
    (folder / "SegmentationClass").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"JPEGImages/img{i}.jpg")
        Image.fromarray((rng.random((48, 64)) > 0.5).astype(np.uint8)).save(folder / f"SegmentationClass/img{i}.png")
    (folder / CORRUPT_MASK).write_bytes(b"\x89PNG\r\n\x1a\n not a PNG any more")
    repo = copy_tracked_files(work / "repo", skip=("tests/", "reports/tiny/"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["datasets"] = {"mine": {"root": str(folder), "preset": "tiny", "classes": ["background", "thing"]}}
    params["dataset"] = "mine"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


class BackgroundPipeline:
    """The run, in a thread; `result()` waits for it and re-raises what it raised, `stop()` ends it early."""

    def __init__(self, work: Path, scratch: Path, problem: str):
        """problem: why the local cluster did not start ("" when it did: the run goes on the cluster)."""
        self.work, self.scratch, self.problem, self.on_cluster = work, scratch, problem, not problem
        self._process: subprocess.Popen | None = None
        self._stopped = False
        self._outcome: PipelineRun | BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _snakemake(self, *args: str) -> subprocess.Popen:
        log = (self.work / "snakemake.out").open("w")
        self._process = subprocess.Popen(["snakemake", *args, *TARGETS], cwd=self.work, env=tool_env(),
                                         stdout=log, stderr=subprocess.STDOUT, text=True)
        if self._stopped:
            self._process.terminate()
        return self._process

    def _run_on_cluster(self) -> PipelineRun:
        record = ClusterRecord()
        repo = broken_dataset_repo(self.scratch)
        since = datetime.now().replace(microsecond=0)
        record.broken_dataset_result = subprocess.run(["snakemake", "--profile", PROFILE, "data/mine/dataset"],
                                                      cwd=repo, env=tool_env(), capture_output=True, text=True)
        record.broken_dataset_jobs, record.broken_dataset_repo = sacct_jobs(repo, since), repo
        process = self._snakemake("--profile", PROFILE)
        cancel_after_first_checkpoint(self.work, process, record)
        process.wait()
        record.jobs = sacct_jobs(self.work, since)
        return PipelineRun(self.work, subprocess.CompletedProcess(process.args, process.returncode), record)

    def _run(self) -> None:
        try:
            if self.on_cluster:
                self._outcome = self._run_on_cluster()
            else:
                process = self._snakemake("--cores", "2")
                process.wait()
                self._outcome = PipelineRun(self.work, subprocess.CompletedProcess(process.args, process.returncode),
                                            None)
        except BaseException as error:  # handed to the test that waits for the run
            self._outcome = error

    def result(self) -> PipelineRun:
        self._thread.join()
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    def stop(self) -> None:
        """Ends the run if it still runs (Snakemake cancels its SLURM jobs), and waits for the thread."""
        self._stopped = True
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        self._thread.join()
