"""What every stage entry point shares: reading params.yaml and turning bad input into a clear exit."""
from __future__ import annotations

import argparse
import functools
import io
import os
import sys
from pathlib import Path

import yaml

from segsort.config import validate_params
from segsort.io import DataError, PipelineError


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> dict:
    """params.yaml with the `KEY=VALUE` overrides applied (dotted keys, YAML values: `segsort.grid=[3,3]`; a
    key of the dataset's preset needs no `presets.<dataset>.` prefix), checked against the schema of
    segsort.config, then with the active preset's sections (`segsort`, `schedules`...) at the top level."""
    path = Path(path)
    params = read_params_file(path)
    for override in overrides or []:
        set_dotted(params, override)
    validate_params(params, path if not overrides else f"{path} with --set {' '.join(overrides)}")
    return with_active_preset(params, path)


def read_params_file(path: Path) -> dict:
    """The YAML of a parameter file; a missing file or broken YAML is a DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: parameter file is missing")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise DataError(f"{path}: not valid YAML ({yaml_problem(err)})") from None
    if not isinstance(params, dict):
        raise DataError(f"{path}: expected a mapping of parameters")
    return params


def set_dotted(params: dict, override: str) -> None:
    """Apply one `KEY=VALUE` override to the file's parameters. The key must already exist, so a typo cannot
    add a silent new key; a key of the dataset's preset (`segsort.grid`) is looked up in that preset."""
    key, sep, value = override.partition("=")
    parts = key.split(".")
    preset = params.get("presets", {}).get(preset_name(params))
    if isinstance(preset, dict) and parts[0] in preset:
        parts = ["presets", preset_name(params), *parts]
    *parents, last = parts
    node = params
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not sep or not isinstance(node, dict) or last not in node:
        raise DataError(f"--set {override!r}: expected KEY=VALUE with KEY an existing dotted key of the parameters")
    try:
        node[last] = yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise DataError(f"--set {override!r}: the value is not valid YAML ({yaml_problem(err)})") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """What a YAML parser complains of, and where, in one line."""
    where = getattr(err, "problem_mark", None)
    return (getattr(err, "problem", None) or str(err).splitlines()[0]) + (
        f" at line {where.line + 1}, column {where.column + 1}" if where else "")


def preset_name(params: dict) -> str:
    """The preset the active dataset trains with: its own (built-in datasets), or the one a dataset of your
    own names (`datasets.<name>.preset`)."""
    own = params.get("datasets", {}).get(params.get("dataset"))
    return own["preset"] if own else params.get("dataset")


def with_active_preset(params: dict, source: str | Path = "params") -> dict:
    """A copy of the parameters with the sections of the dataset's preset at the top level: `dataset` is the
    one key that selects both the data and its hyper-parameters."""
    preset = preset_name(params)
    if preset not in params.get("presets", {}):
        raise DataError(f"{source}: dataset {params.get('dataset')!r} has no preset {preset!r} (presets: "
                        f"{sorted(params.get('presets', {}))})")
    clashes = set(params) & set(params["presets"][preset])
    if clashes:
        raise DataError(f"{source}: {sorted(clashes)} belong inside a preset, not at the top level")
    return with_stand_ins({**params, **params["presets"][preset]})


RUN_GROUPS = ("unsupervised_runs", "supervised_runs", "softmax_runs")


def with_stand_ins(params: dict) -> dict:
    """The runs with every network of the active preset's `stand_ins` replaced by the network that stands in
    for it on this dataset (on tiny, ImageNet EfficientNet-Lites for the paper's networks, whose weights
    torchvision downloads). A run keeps its name, the paper's row, and its init (`imagenet_<paper network>`
    is then the stand-in's ImageNet model, stages/imagenet_model.py), so that the DAG's jobs and paths are
    the same for every dataset; it records the paper's network as `stands_in_for`."""
    stand_ins = params["presets"][preset_name(params)].get("stand_ins", {})

    def resolved(run: dict) -> dict:
        used = stand_ins.get(run["network"])
        return run if used is None else {**run, "network": used, "stands_in_for": run["network"]}

    return {**params, **{group: {name: resolved(run) for name, run in params[group].items()} for group in RUN_GROUPS}}


class _Tee(io.TextIOBase):
    """Writes to the terminal and to a log file at once."""

    def __init__(self, terminal, log):
        self.terminal, self.log = terminal, log

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()


class StageParser(argparse.ArgumentParser):
    """Every stage takes --params and --log; parsing --log copies stdout and stderr into that file (in
    process 0 alone, under torchrun).

    The options may follow a `--`: the training commands put one after `stages/train.py`, because torchrun's
    own parser reads every option of its command line, the script's too, and refuses `--run` and `--log` as
    ambiguous abbreviations of its `--run-path` and `--log-dir`."""

    def __init__(self, description: str):
        super().__init__(description=description)
        self.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
        self.add_argument("--log", type=Path, help="also write everything the stage prints to this file")
        self.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a parameter (dotted key, YAML value) after the preset is applied; "
                               "the ablation sweeps use it")

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        parsed = super().parse_args(args[1:] if args[:1] == ["--"] else args, namespace)
        refuse_outputs_onto_inputs(parsed)
        if parsed.log is not None and os.environ.get("RANK", "0") == "0":
            parsed.log.parent.mkdir(parents=True, exist_ok=True)
            log = parsed.log.open("w", buffering=1)
            sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
        return parsed


OUTPUT_OPTIONS = ("out", "out_dir", "model_out", "curve", "train_log", "tensorboard", "log")  # what stages write


def refuse_outputs_onto_inputs(parsed: argparse.Namespace) -> None:
    """DataError, before any work, if a stage's output option names one of its inputs (a path of any other
    option, the parameter file included): the output would replace what it is computed from."""
    def option(dest: str) -> str:
        return "--" + dest.replace("_", "-")

    inputs = {}
    for dest, value in vars(parsed).items():
        for path in value if isinstance(value, list) else [value]:
            if (isinstance(path, Path) and dest not in OUTPUT_OPTIONS) or dest == "params":
                inputs[Path(path).resolve()] = dest
    for dest in OUTPUT_OPTIONS:
        out = getattr(parsed, dest, None)
        if out is not None and Path(out).resolve() in inputs:
            raise DataError(f"{option(dest)} {out}: is also the input {option(inputs[Path(out).resolve()])}; "
                            f"choose another output path")


def parser(description: str) -> StageParser:
    return StageParser(description)


def add_device_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="where the network runs: auto (a GPU if there is one, default), cpu, cuda, cuda:1, ...")


def stage_device(name: str = "auto"):
    """The torch device a stage runs its network on (`--device`), said in its log."""
    import torch

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DataError(f"--device {name}: this machine has no CUDA device")
    return log_device(device)


def log_device(device):
    """Say in the stage's log where its network runs (the GPU's name too)."""
    import torch

    print(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    return device


def add_segmentation_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by the stages that segment images with a model (bank, evaluation)."""
    add_device_argument(p)
    p.add_argument("--model", required=True, type=Path, help="model checkpoint")
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--features", choices=["embedding", "backbone"], default="embedding",
                   help="SegSort embedding, or the ImageNet backbone features (Table 3, row 1)")
    p.add_argument("--segments", type=Path,
                   help="segment images by these pseudo-segments instead of k-means on the features")


def setup_torch(params: dict, threads: int | None = None) -> None:
    """Fixed thread count, seed and kernels, so the same params give the same numbers whoever schedules the
    stage, on whichever x86-64 CPU with AVX2: ATen's and MKL's code paths are pinned by importing segsort (its
    docstring), and oneDNN is switched off (convolutions take ATen's own kernels and MKL's matrix products).

    Deterministic algorithms only warn where an operation has no deterministic kernel (some CUDA
    backward passes), so a GPU run is never refused for it."""
    import torch  # here, not at the top: the stages that only assemble tables start without loading torch

    torch.set_num_threads(threads or params["threads"])
    torch.manual_seed(params["seed"])
    # torch.use_deterministic_algorithms also sets torch._inductor's `deterministic` flag, which imports
    # inductor and dynamo: about 3 s of every stage's start. No stage compiles, so only ATen's switch is set.
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    torch.backends.cudnn.benchmark = False
    capability = torch.backends.cpu.get_cpu_capability()
    pinned = os.environ.get("SEGSORT_NATIVE_ISA") != "1"
    torch.backends.mkldnn.enabled = not pinned  # oneDNN's kernels sum in an order that depends on the CPU
    if pinned and capability.startswith("AVX512"):  # above the cap (other CPUs: AVX2, DEFAULT, NEON, SVE...)
        raise RuntimeError(f"torch computed with {capability} kernels before segsort pinned them to AVX2: "
                           "import segsort before computing any tensor")
    print(f"numerics: {torch.get_num_threads()} threads, ATen {capability} kernels"
          + (f", MKL {os.environ['MKL_CBWR']}, no oneDNN" if pinned else ", native ISA"))


def stage_main(main):
    """Run a stage's main(); the project's own errors (PipelineError: bad input, a failed download, a training
    that cannot go on) exit 1 with one clear line. Anything else is a bug: it keeps its traceback."""
    @functools.wraps(main)
    def wrapper():
        try:
            main()
        except PipelineError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
    return wrapper
