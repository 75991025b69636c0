from functools import reduce
from pathlib import Path

from segsort.config import validate_params
from segsort.stage import RUN_GROUPS, preset_name, with_stand_ins


def dotted_differences(a, b, prefix=""):
    """The dotted keys whose values differ between two parameter trees."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [prefix.rstrip(".") or "(all)"]
    return [key for name in sorted(set(a) | set(b), key=str)
            for key in dotted_differences(a.get(name), b.get(name), f"{prefix}{name}.")]


# The stages read params.yaml themselves, so a value set by `--config` or `--configfile` would reach
# Snakemake's rerun decisions but not the jobs: their outputs would disagree with their parameters.
OVERRIDDEN = dotted_differences(config, PARAMS_FILE)  # PARAMS_FILE: params.yaml as the Snakefile read it
if OVERRIDDEN:
    raise ValueError(f"--config/--configfile override {', '.join(OVERRIDDEN)}: the stages read params.yaml, not "
                     f"Snakemake's config, so edit params.yaml instead")

validate_params(config)  # unknown keys, wrong types, values out of range: one line each, naming the key
config.update(with_stand_ins(config))  # the networks a run trains on this dataset (stages read them so too)
DATA = f"data/{config['dataset']}"
REPORTS = f"reports/{config['dataset']}"  # each dataset's tables and figures; outputs of datasets never mix
PRESET = f"presets.{preset_name(config)}"  # a dataset of your own names the preset it trains with
OWN_DATASET = config["datasets"].get(config["dataset"])  # None for the built-in datasets
IMAGES_ONLY = OWN_DATASET is not None and not OWN_DATASET.get("classes")  # the unsupervised chain only
TRAIN_PARAMS = ("seed", "threads", "checkpoint_every", "mixed_precision", "optimizer", f"{PRESET}.segsort")
BANK_PARAMS = ("threads", f"{PRESET}.segsort", "evaluation.bank_split", f"{PRESET}.inference.kmeans_iterations")
EVAL_PARAMS = ("threads", f"{PRESET}.segsort", "evaluation.bank_split", "evaluation.eval_split", f"{PRESET}.inference")
SOFTMAX_EVAL_PARAMS = ("threads", "evaluation.eval_split", f"{PRESET}.inference")
PAPER_TABLES = "references/paper_tables.yaml"


def params_of(*keys):
    """The params.yaml values (dotted keys) a job reads: a change to any of them re-runs the job,
    as DVC does for the same keys in dvc.yaml."""
    return {key: reduce(lambda node, part: node[part], key.split("."), config) for key in keys}


STOOD_IN = {network for preset in config["presets"].values() for network in preset.get("stand_ins", {})}


def network_params(network):
    """The params.yaml keys of the network a job trains or builds for `network` (a run's, as params.yaml names
    it): its section, or where some preset has a stand-in for it, every network and the active preset's
    stand-ins, so that a job tracks the same keys whichever dataset is active (dvc.yaml is one file)."""
    return ["networks", f"{PRESET}.stand_ins"] if network in STOOD_IN else [f"networks.{network}"]


def one_of(names):
    """Wildcard constraint matching exactly the given names."""
    return "|".join(names) if names else "^$"


def run_keys(group, name):
    """The params.yaml keys a training run `name` of `group` (supervised_runs, unsupervised_runs, softmax_runs)
    reads."""
    run = config[group][name]
    return [*TRAIN_PARAMS, f"{group}.{name}", *network_params(run.get("stands_in_for", run["network"])),
            f"{PRESET}.schedules.{run['schedule']}"]


def run_params(group):
    """Tracked params of a training run of `group`, its name the wildcard `run`."""
    return lambda wildcards: params_of(*run_keys(group, wildcards.run))


def init_model(group):
    """The checkpoint a training run of `group` starts from."""
    return lambda wildcards: f"{DATA}/models/{config[group][wildcards.run]['init']}/model.pt"


def table_inputs(table, rows):
    """A table's per-model inputs: metrics files, or for a test-split table the submission packages."""
    models = dict.fromkeys(row["model"] for row in rows)
    if table in SERVER_TABLES:
        return [f"{REPORTS}/submissions/{model}.zip" for model in models]
    return [f"{REPORTS}/metrics/{model}.json" for model in models]


def ablation_commands(setting, init):
    """An ablation job's commands (workflow/rules/ablations.smk): train, bank and evaluate one setting;
    `setting` is the --set override all three take."""
    return (
        f"{config['train_launcher']} stages/train.py -- --run {ABLATIONS['run']} --set '{setting}' --init {init}"
        f" --dataset-root {{input.dataset}} --model-out {{output.model}} --train-log {{output.train_log}}"
        f" --tensorboard {{output.tensorboard}} --log {{log.train}}"
        f" && python stages/build_bank.py --set '{setting}' --model {{output.model}} --dataset-root {{input.dataset}}"
        f" --out {{output.bank}} --log {{log.bank}}"
        f" && python stages/evaluate.py --set '{setting}' --model {{output.model}} --bank {{output.bank}}"
        f" --dataset-root {{input.dataset}} --out {{output.metrics}} --log {{log.metrics}}"
    )


def ablation_outputs(sweep):
    """What an ablation job of `sweep` (grid, embedding_dim) writes for one `value`."""
    return dict(
        model=f"{DATA}/ablations/{sweep}-{{value}}/model.pt",
        train_log=f"{DATA}/ablations/{sweep}-{{value}}/train_log.csv",
        bank=f"{DATA}/ablations/{sweep}-{{value}}/bank.h5",
        metrics=f"{REPORTS}/sweeps/{sweep}/{{value}}.json",
        tensorboard=directory(f"{DATA}/logs/tensorboard/ablations/{sweep}-{{value}}"),
    )


def ablation_logs(sweep):
    return {step: f"{DATA}/logs/ablations/{sweep}-{{value}}/{step}.log" for step in ("train", "bank", "metrics")}


def run_of(name):
    """(group, definition) of a training run of params.yaml."""
    return next((group, config[group][name]) for group in RUN_GROUPS
                if name in config[group])


def training_chain(models):
    """The runs that train `models`, each after the run it starts from (ImageNet models excluded)."""
    chain = []

    def visit(name):
        if not name.startswith("imagenet_") and name not in chain:
            visit(run_of(name)[1]["init"])
            chain.append(name)

    for model in models:
        visit(model)
    return chain



def table_order(name):
    """Tables in the paper's order, a table's variants (table3_seeds) right after it."""
    number, _, variant = name.removeprefix("table").partition("_")
    return int(number), variant
