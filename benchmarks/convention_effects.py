"""What each of the release's conventions (docs/segsort_core.md) changes on the tiny dataset: the runs it
touches are trained, banked and evaluated again with the other behaviour, by the stage commands with one
`--set`, from the committed run's ImageNet models and dataset; printed beside the committed metrics.

    python benchmarks/convention_effects.py      # after the tiny DAG has run (data/tiny/ and reports/tiny/)

- segsort.grid_blocks=even: `sup_train` (k-means' initial blocks in training, in its bank and on the test images);
- segsort.unsupervised_padding=dropped: `unsup_train_aug` (the padding of its crops left out of its loss);
- inference.bank_locations=size: `sup_train`'s bank only (the bank's k-means location features over H, not H-1).
One seed: the seeds' spread of Table 3 (docs/results.md) is the yardstick for a difference.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA, REPORTS = REPO / "data" / "tiny", REPO / "reports" / "tiny"
CONVENTIONS = [  # (setting, run, train it again?)
    ("segsort.grid_blocks=even", "sup_train", True),
    ("segsort.unsupervised_padding=dropped", "unsup_train_aug", True),
    ("inference.bank_locations=size", "sup_train", False),
]
INITS = {"sup_train": "imagenet_lite0_pyramid", "unsup_train_aug": "imagenet_lite0_pyramid"}


def stage(script: str, *args) -> None:
    subprocess.run([sys.executable, f"stages/{script}", *map(str, args)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)


def scores(path: Path) -> tuple[float, float]:
    metrics = json.loads(path.read_text())
    return 100 * metrics["miou"], 100 * metrics["boundary_f"]


def main() -> None:
    print("setting | run | mIoU: committed -> with the setting (Δ) | boundary F: committed -> with it (Δ)")
    for setting, run, train in CONVENTIONS:
        with tempfile.TemporaryDirectory() as work:
            work, model = Path(work), DATA / "models" / run / "model.pt"
            if train:
                extra = ["--segments", DATA / "pseudo_segments"] if run.startswith("unsup") else []
                model = work / "model.pt"
                stage("train.py", "--run", run, "--set", setting, "--init", DATA / "models" / INITS[run] / "model.pt",
                      "--dataset-root", DATA / "dataset", *extra, "--model-out", model, "--train-log", work / "log.csv",
                      "--tensorboard", work / "tb")
            stage("build_bank.py", "--set", setting, "--model", model, "--dataset-root", DATA / "dataset",
                  "--out", work / "bank.h5")
            stage("evaluate.py", "--set", setting, "--model", model, "--bank", work / "bank.h5",
                  "--dataset-root", DATA / "dataset", "--out", work / "metrics.json")
            (miou, f), (new_miou, new_f) = scores(REPORTS / "metrics" / f"{run}.json"), scores(work / "metrics.json")
            print(f"{setting} | {run} | {miou:.2f} -> {new_miou:.2f} ({new_miou - miou:+.2f}) | "
                  f"{f:.2f} -> {new_f:.2f} ({new_f - f:+.2f})", flush=True)


if __name__ == "__main__":
    main()
