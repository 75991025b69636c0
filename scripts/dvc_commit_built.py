"""Record in dvc.lock the DVC stages whose results are on disk (after a Snakemake run), without recomputing them.

    python scripts/dvc_commit_built.py          # commits them: `dvc commit --force <those stages>`
    python scripts/dvc_commit_built.py --dry    # only lists them

A plain `dvc commit` takes every stage of dvc.yaml and fails at the first one whose output is missing
(`output '…/model.pt' does not exist`): a Snakemake run builds the jobs of its targets, not all 96 stages.
This commits the stages whose dependencies and outputs all exist, and only those. `--force` because DVC
would otherwise ask, stage by stage, whether to record files that differ from dvc.lock: recording the
files Snakemake made is the point.
"""
import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def built_stages(repo: Path) -> list[str]:
    """Names of the DVC stages of the checkout `repo` whose dependencies and outputs all exist."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return [stage.addressing for stage in dvc_repo.index.stages
                if all(Path(item.fs_path).exists() for item in [*stage.deps, *stage.outs])]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="only list the stages that would be committed")
    args = p.parse_args()
    stages = built_stages(REPO)
    print(f"{len(stages)} stages have all their dependencies and outputs on disk"
          + (":\n  " + "\n  ".join(stages) if stages else ""))
    if stages and not args.dry:
        sys.exit(subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", *stages], cwd=REPO).returncode)


if __name__ == "__main__":
    main()
