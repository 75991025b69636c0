from functools import reduce

DATA = f"data/{config['dataset']}"
PRESET = f"presets.{config['preset']}"
TRAIN_PARAMS = ("seed", "threads", "checkpoint_every", "mixed_precision", "optimizer", f"{PRESET}.segsort")
BANK_PARAMS = ("threads", f"{PRESET}.segsort", "evaluation.bank_split")
EVAL_PARAMS = BANK_PARAMS + ("evaluation.eval_split", f"{PRESET}.inference")
SOFTMAX_EVAL_PARAMS = ("threads", "evaluation.eval_split", f"{PRESET}.inference")


def params_of(*keys):
    """The params.yaml values (dotted keys) a job reads: a change to any of them re-runs the job,
    as DVC does for the same keys in dvc.yaml."""
    return {key: reduce(lambda node, part: node[part], key.split("."), config) for key in keys}


def one_of(names):
    """Wildcard constraint matching exactly the given names."""
    return "|".join(names) if names else "^$"


def run_params(group):
    """Tracked params of a training run of `group` (supervised_runs, unsupervised_runs, softmax_runs)."""

    def tracked(wildcards):
        run = config[group][wildcards.run]
        return params_of(*TRAIN_PARAMS, f"{group}.{wildcards.run}", f"networks.{run['network']}",
                         f"{PRESET}.schedules.{run['schedule']}")

    return tracked


def init_model(group):
    """The checkpoint a training run of `group` starts from."""
    return lambda wildcards: f"{DATA}/models/{config[group][wildcards.run]['init']}/model.pt"
