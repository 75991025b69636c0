"""params.yaml is checked against its schema (segsort/config.py) before a stage or the DAG starts: a wrong
type, an unknown or missing key, a value out of range or a name that points nowhere fails at once, one
line per problem, naming the file and the dotted key."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from segsort.io import DataError
from segsort.stage import load_params
from workflow_dags import copy_tracked_files

REPO = Path(__file__).resolve().parents[1]
PARAMS = (REPO / "params.yaml").read_text()


# A misspelt key is reported twice: the unknown key, and the key it should have been, now missing.
@pytest.mark.parametrize("find, replace, message", [
    ("      kappa: 10.0 ", "      kappa: ten ", "presets.tiny.segsort.kappa: Input should be a valid number (got 'ten')"),
    ("      kappa: 10.0 ", "      kapa: 10.0 ", "presets.tiny.segsort.kapa: unknown key (got 10.0)"),
    ("checkpoint_every: 50", "checkpoint_evry: 50", "checkpoint_evry: unknown key (got 50)"),
    ("supervised: {lr: 2.0e-3, steps: 60,", "supervised: {lr: 2.0e-3, steps: \"60\",",
     "presets.tiny.schedules.supervised.steps: Input should be a valid integer (got '60')"),
    ("threads: 2 ", "threads: two ", "threads: Input should be a valid integer (got 'two')"),
    ("  max_regions: 48", "  max_regions: 300", "pseudo_segments.max_regions: Input should be less than or equal to 255"),
    ("sup_train: {network: lite0_pyramid,", "sup_train: {network: lite1_pyramid,",
     "supervised_runs.sup_train.network: 'lite1_pyramid' is not in networks"),
    ("seed: 0 ", "seed: [0 ", "not valid YAML (expected ',' or ']', but got '<scalar>' at line 8, column 1)"),
])
def test_a_wrong_value_fails_in_one_line_naming_its_key(tmp_path, find, replace, message):
    assert find in PARAMS
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS.replace(find, replace, 1))
    with pytest.raises(DataError) as err:
        load_params(path)
    lines = str(err.value).splitlines()
    expected = [line for line in lines if message in line]
    assert expected and all(line.startswith(f"{path}: ") for line in lines), lines
    assert len(lines) == (2 if "unknown key" in message else 1), lines
    if "unknown key" in message:
        assert any(line.endswith(": missing key") for line in lines), lines


@pytest.mark.parametrize("override, message", [
    ("segsort.grid=5", "presets.tiny.segsort.grid: Input should be a valid list (got 5)"),
    ("schedules.supervised.batch_size=0", "presets.tiny.schedules.supervised.batch_size: Input should be greater than 0"),
    ("schedules.supervised.steps=-3", "presets.tiny.schedules.supervised.steps: Input should be greater than or equal to 0"),
    ("batch_size=0", "--set 'batch_size=0': expected KEY=VALUE with KEY an existing dotted key"),
])
def test_a_wrong_override_fails_in_one_line(override, message):
    with pytest.raises(DataError) as err:
        load_params(REPO / "params.yaml", [override])
    assert len(str(err.value).splitlines()) == 1 and message in str(err.value), str(err.value)


def test_an_override_of_the_preset_reaches_the_preset():
    params = load_params(REPO / "params.yaml", ["segsort.grid=[3,3]", "inference.knn_k=5", "seed=4"])
    assert params["segsort"]["grid"] == [3, 3] and params["inference"]["knn_k"] == 5 and params["seed"] == 4
    assert params["presets"]["tiny"]["segsort"]["grid"] == [3, 3]


def dag_dry_run(tmp_path, find: str, replace: str) -> subprocess.CompletedProcess:
    """`snakemake -n` in a scratch checkout whose params.yaml has `find` replaced."""
    assert find in PARAMS
    work = copy_tracked_files(tmp_path, skip=("reports/", "tests/"))
    (work / "params.yaml").write_text(PARAMS.replace(find, replace, 1))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["snakemake", "-n", "--cores", "1"], cwd=work, env=env, capture_output=True, text=True)


def test_the_dag_refuses_a_typo_before_planning(tmp_path):
    result = dag_dry_run(tmp_path, "checkpoint_every: 50", "checkpoint_evry: 50")
    assert result.returncode != 0
    assert "params.yaml: checkpoint_evry: unknown key (got 50)" in result.stdout + result.stderr


def test_the_dag_names_the_line_and_column_of_broken_yaml(tmp_path):
    """Snakemake's own reading of the config file would say only "Config file is not valid JSON or YAML"."""
    result = dag_dry_run(tmp_path, "seed: 0 ", "seed: [0 ")
    assert result.returncode != 0
    assert ("params.yaml: not valid YAML (expected ',' or ']', but got '<scalar>' at line 8, column 1)"
            in result.stdout + result.stderr), result.stdout + result.stderr


def test_every_preset_of_the_committed_file_is_valid():
    raw = yaml.safe_load(PARAMS)
    for dataset in raw["presets"]:
        path = REPO / "params.yaml"
        assert load_params(path, [f"dataset={dataset}"])["dataset"] == dataset


def test_the_schemas_backbones_are_the_models():
    """The schema names the backbones itself (it is read without torch, by the Snakefile too)."""
    from typing import get_args

    from segsort.config import Backbone
    from segsort.models.backbones import BACKBONES

    assert set(get_args(Backbone)) == set(BACKBONES)
