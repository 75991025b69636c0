"""What the pinned numerics (segsort/__init__.py) cost: the tiny chain's trainings timed with them and with
each library's own choice of kernels (SEGSORT_NATIVE_ISA=1), in one run.

Each measurement is one `stages/train.py` process training `--steps` steps of a run of Table 3's chain
(sup_train: vMF-N loss on train; unsup_train_aug: vMF loss on pseudo-segments), from the ImageNet model;
the two numerics alternate, `--repeats` times, so that a slower spell of a shared machine falls on both.
Prints each process's wall and CPU seconds (start-up included), their medians and the ratio pinned/native.
Needs the tiny chain's dataset, pseudo-segments and ImageNet model (`snakemake --cores 2
data/tiny/models/imagenet_lite0_pyramid/model.pt data/tiny/pseudo_segments`).

    python benchmarks/pinned_numerics.py --steps 20 --repeats 3
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "tiny"
RUNS = {"sup_train": ("supervised", []),
        "unsup_train_aug": ("unsupervised", ["--segments", str(DATA / "pseudo_segments")])}


def train(run: str, steps: int, native: bool, work: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one training process."""
    schedule, extra = RUNS[run]
    env = {**os.environ, "SEGSORT_NATIVE_ISA": "1" if native else "0"}
    command = [sys.executable, "stages/train.py", "--run", run, "--init",
               str(DATA / "models" / "imagenet_lite0_pyramid" / "model.pt"), "--dataset-root", str(DATA / "dataset"),
               *extra, "--set", f"schedules.{schedule}.steps={steps}", "--model-out", str(work / "model.pt"),
               "--train-log", str(work / "log.csv"), "--tensorboard", str(work / "tb")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for path in ("model.pt", "log.csv"):
        (work / path).unlink()
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    for run in RUNS:
        times = {False: [], True: []}
        with tempfile.TemporaryDirectory() as work:
            for repeat in range(args.repeats):
                for native in ((False, True) if repeat % 2 == 0 else (True, False)):
                    wall, cpu = train(run, args.steps, native, Path(work))
                    times[native].append((wall, cpu))
                    print(f"{run} {'native' if native else 'pinned'}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
        (pinned_wall, pinned_cpu), (native_wall, native_cpu) = (
            (statistics.median(w for w, _ in times[n]), statistics.median(c for _, c in times[n])) for n in (False, True))
        print(f"{run}, {args.steps} steps (medians of {args.repeats}): pinned {pinned_wall:.1f} s wall / "
              f"{pinned_cpu:.1f} s CPU, native {native_wall:.1f} / {native_cpu:.1f}: pinned/native "
              f"{pinned_wall / native_wall:.2f}x wall, {pinned_cpu / native_cpu:.2f}x CPU", flush=True)


if __name__ == "__main__":
    main()
