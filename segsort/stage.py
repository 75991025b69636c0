"""What every stage entry point shares: reading params.yaml and turning bad input into a clear exit."""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch
import yaml

from segsort.io import DataError


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: parameter file is missing")
    return yaml.safe_load(path.read_text())


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    return p


def add_segmentation_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by the stages that segment images with a model (bank, evaluation)."""
    p.add_argument("--model", required=True, type=Path, help="model checkpoint")
    p.add_argument("--dataset-root", required=True, type=Path)
    p.add_argument("--features", choices=["embedding", "backbone"], default="embedding",
                   help="SegSort embedding, or the ImageNet backbone features (Table 3, row 1)")
    p.add_argument("--segments", type=Path,
                   help="segment images by these pseudo-segments instead of k-means on the features")


def setup_torch(params: dict) -> None:
    """Fixed thread count and seed, so the same params give the same numbers whoever schedules the stage."""
    torch.set_num_threads(params["threads"])
    torch.manual_seed(params["seed"])


def stage_main(main):
    """Run a stage's main(); bad input (DataError) and training failures exit 1 with one clear line."""
    @functools.wraps(main)
    def wrapper():
        try:
            main()
        except (DataError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
    return wrapper
