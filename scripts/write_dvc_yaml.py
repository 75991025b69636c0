"""Write dvc.yaml from the Snakemake workflow: one DVC stage per job Snakemake plans (workflow/jobs.py).

    python scripts/write_dvc_yaml.py           # after editing params.yaml or workflow/: rewrites dvc.yaml
    python scripts/write_dvc_yaml.py --check   # exit 1, naming the stages that differ, if dvc.yaml is stale

The DAG is described once, in workflow/ and params.yaml; dvc.yaml is its DVC rendering, checked by the test
suite (tests/test_dag_agreement.py). A stage runs the job's command and declares the job's inputs as deps,
its outputs and logs as outs, and the params.yaml keys it tracks as params. The dataset's name in paths and
preset keys is written as `${dataset}`, and the training launcher as `${train_launcher}`, so that selecting
another dataset or launcher in params.yaml needs no new dvc.yaml (the test suite checks that the file is
the same whichever dataset params.yaml selects). Kinds of outputs:
- figures (reports/<dataset>/figures/*.png) are DVC image plots, a curve output (named `curve`) a DVC plot
  of its rule's `params.curve_axes`, and every JSON file under reports/ a DVC metrics file: the per-model
  metrics the evaluation stages write, the sweeps' and headline_metrics.json, so that `dvc metrics show`
  and `dvc exp show` report what the stages just run wrote;
- what is under reports/ or is a log is small and versioned by git, so DVC does not cache it;
- what is under reports/ is also `persist`: DVC deletes a stage's outputs before running it unless they
  persist, so an interrupted or failed run would leave a git-tracked report deleted. The stages write
  each output atomically (segsort.io.atomic_path): a persisted report is replaced only when its stage
  succeeds. (DVC's run-cache skips stages with persisted outputs: they rerun instead of being restored.)
"""
import argparse
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from segsort.io import PipelineError  # noqa: E402
from workflow.jobs import Job, pipeline_jobs  # noqa: E402

DVC_YAML = REPO / "dvc.yaml"
HEADER = """\
# Written by scripts/write_dvc_yaml.py from workflow/ (Snakemake) and params.yaml: do not edit by hand.
# After a change to either, run `python scripts/write_dvc_yaml.py`; the test suite fails while this file is stale.
# Stage names: the Snakemake rule, then its wildcard values (train_supervised-sup_train).
"""


class Inline(dict):
    """A mapping dvc.yaml shows on one line (an output's options)."""


class InlineList(list):
    """A list dvc.yaml shows on one line (a stage's params)."""


yaml.SafeDumper.add_representer(Inline, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, True))
yaml.SafeDumper.add_representer(InlineList, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, True))


def templated(text: str, dataset: str, launcher: str) -> str:
    """A path, key or command with the dataset and the training launcher as params.yaml references."""
    text = re.sub(rf"(?<![\w/.])(data|reports)/{re.escape(dataset)}/", r"\1/${dataset}/", text)
    text = re.sub(rf"^presets\.{re.escape(dataset)}(?=\.|$)", "presets.${dataset}", text)
    return text.replace(f"{launcher} stages/train.py", "${train_launcher} stages/train.py")


def dvc_stage(job: Job, dataset: str, launcher: str) -> dict:
    def entry(path: str) -> str:
        return templated(path, dataset, launcher)

    def uncached(path: str, **options) -> dict:
        """An output DVC does not cache; a git-tracked report (under reports/) is also persisted."""
        options["cache"] = False
        if path.startswith("reports/"):
            options["persist"] = True
        return {entry(path): Inline(options)}

    stage = {"cmd": templated(job.cmd, dataset, launcher)}
    if job.inputs:
        stage["deps"] = sorted(dict.fromkeys(map(entry, job.inputs)))
    if job.params:
        stage["params"] = InlineList(entry(key) for key in job.params)
    outs, plots, metrics = [], [], []
    for name, path in job.outputs.items():
        if re.fullmatch(r"reports/.+\.json", path):
            metrics.append(uncached(path))
        elif name == "curve":
            x, y = job.curve_axes
            plots.append(uncached(path, x=x, y=y))
        elif name == "train_log" and path.startswith("reports/"):
            plots.append(uncached(path, x="step", y="loss"))
        elif re.fullmatch(r"reports/[^/]+/figures/[^/]+\.png", path):
            plots.append(uncached(path))
        else:
            outs.append(uncached(path) if path.startswith("reports/") or "/logs/" in path else entry(path))
    outs += [uncached(path) for path in job.logs]
    for key, entries in (("outs", outs), ("metrics", metrics), ("plots", plots)):
        if entries:
            stage[key] = entries
    return stage


def dag_order(jobs: list[Job]) -> list[Job]:
    """Jobs by depth in the DAG (a job after every job it needs), then by name."""
    producer = {path: job.name for job in jobs for path in [*job.outputs.values(), *job.logs]}
    needs = {job.name: {producer[path] for path in job.inputs if path in producer} - {job.name} for job in jobs}
    depth = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max(map(depth_of, needs[name]), default=-1)
        return depth[name]

    return sorted(jobs, key=lambda job: (depth_of(job.name), job.name))


def render(repo: Path) -> str:
    """dvc.yaml for the checkout `repo`, as text."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    stages = {job.name: dvc_stage(job, params["dataset"], params["train_launcher"])
              for job in dag_order(pipeline_jobs(repo))}
    text = yaml.safe_dump({"stages": stages}, sort_keys=False, width=110, allow_unicode=True)
    return HEADER + re.sub(r"\n(  \w)", r"\n\n\1", text).replace("stages:\n\n", "stages:\n", 1)  # stages apart


def stale_stages(committed: str, fresh: str) -> list[str]:
    """Names of the stages that are new, gone or different in `fresh`."""
    old = (yaml.safe_load(committed) or {}).get("stages", {})
    new = yaml.safe_load(fresh)["stages"]
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only say whether dvc.yaml is up to date (exit 1 if not)")
    args = p.parse_args()
    try:
        fresh = render(REPO)
    except PipelineError as err:  # params.yaml does not fit its schema: one line per problem
        sys.exit(str(err))
    committed = DVC_YAML.read_text() if DVC_YAML.exists() else ""
    if args.check:
        if committed != fresh:
            stale = stale_stages(committed, fresh)
            sys.exit(f"dvc.yaml is stale ({len(stale)} stages differ: {', '.join(stale) or 'layout only'}); "
                     f"run python scripts/write_dvc_yaml.py")
        print("dvc.yaml is up to date")
        return
    tmp = DVC_YAML.with_suffix(".yaml.tmp")
    tmp.write_text(fresh)
    tmp.replace(DVC_YAML)
    print(f"wrote {DVC_YAML.relative_to(REPO)}: {len(yaml.safe_load(fresh)['stages'])} stages")


if __name__ == "__main__":
    main()
