from functools import reduce

DATA = f"data/{config['dataset']}"


def params_of(*keys):
    """The params.yaml values (dotted keys) a rule reads: a change to any of them re-runs the rule,
    as DVC does for the same keys in dvc.yaml."""
    return {key: reduce(lambda node, part: node[part], key.split("."), config) for key in keys}


def one_of(names):
    """Wildcard constraint matching exactly the given names."""
    return "|".join(names) if names else "^$"
