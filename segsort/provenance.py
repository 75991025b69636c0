"""Where a run parts from the committed one: the first stage, and the first training step, that differ.

The committed reference run's provenance is DVC's own: dvc.lock holds the hash of every stage's outputs,
and reports/<dataset>/training/<run>.csv every training's per-step loss (every bit of the float32). A run
made by Snakemake or DVC is compared stage by stage in the DAG's order (dvc.yaml lists the stages so): the
first stage whose outputs differ while everything before it agrees is where the machines parted, and for a
training, the first step whose loss differs. Logs (anything under logs/: stage output, TensorBoard events)
and the hidden-class experiment's banks (`segsort bank add` records the time and folder of each addition)
hold times and are left out, their metrics are compared; a stage the run did not build is skipped.

    segsort compare-run                       # this checkout's outputs against its committed dvc.lock (git HEAD)
    segsort compare-run --run /scratch/run --reference .   # another folder's run against this checkout
"""
from __future__ import annotations

import csv
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from segsort.io import DataError

UNCOMPARED = ("logs/", "/hidden_class/banks/")  # outputs that hold times: never the same twice


@dataclass
class Parting:
    """The first stage whose outputs differ from the reference's, and where its training log first does."""
    stage: str
    outputs: list[str]           # its outputs that differ
    step: int | None = None      # the first training step whose loss differs (None: not a training, or same)
    losses: tuple[str, str] | None = None  # that step's loss in the reference and in the run

    def __str__(self) -> str:
        said = f"the run parts at stage {self.stage}: {', '.join(self.outputs)} differ"
        if self.step is not None:
            said += f"; its training first differs at step {self.step} (loss {self.losses[0]} committed, " \
                    f"{self.losses[1]} here)"
        return said


def committed_text(reference: Path | None, run: Path, path: str) -> str | None:
    """A file of the reference run: from the folder `reference`, or from git HEAD of `run`; None if absent."""
    if reference is not None:
        file = reference / path
        return file.read_text() if file.is_file() else None
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=run, capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else None


def first_differing_step(committed: str, produced: str) -> tuple[int, str, str] | None:
    """(step, committed loss, produced loss) of the first step whose loss differs (a step missing from either
    log counts), None if every step agrees."""
    ours, theirs = (list(csv.DictReader(io.StringIO(text))) for text in (committed, produced))
    for index in range(max(len(ours), len(theirs))):
        a = ours[index]["loss"] if index < len(ours) else "(none)"
        b = theirs[index]["loss"] if index < len(theirs) else "(none)"
        if a != b:
            return index + 1, a, b
    return None


def compare_run(run: Path, reference: Path | None = None) -> Parting | None:
    """The first stage (in dvc.yaml's order) of the run in `run` whose outputs differ from the reference's
    dvc.lock, with its training's first differing step; None if every stage built agrees."""
    from dvc.repo import Repo  # loads DVC: only this command needs it

    lock_text = committed_text(reference, run, "dvc.lock")
    if lock_text is None:
        raise DataError(f"{reference or run}: no committed dvc.lock to compare the run with")
    locked = {name: {out["path"]: out.get("md5") for out in stage.get("outs", [])}
              for name, stage in (yaml.safe_load(lock_text).get("stages") or {}).items()}
    with Repo(str(run), config={"core": {"no_scm": True}}) as repo:  # a scratch copy need not be a git checkout
        for stage in repo.index.stages:
            committed = locked.get(stage.name, {})
            differ = [out.def_path for out in stage.outs
                      if not any(part in out.def_path for part in UNCOMPARED) and out.def_path in committed and out.exists
                      and out.get_hash().value != committed[out.def_path]]
            if not differ:
                continue
            parting = Parting(stage.name, differ)
            for path in (p for p in differ if "/training/" in p):
                reference_log = committed_text(reference, run, path)
                found = first_differing_step(reference_log, (run / path).read_text()) if reference_log else None
                if found:
                    parting.step, *losses = found
                    parting.losses = tuple(losses)
            return parting
    return None
