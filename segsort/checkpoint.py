"""Model checkpoints: written atomically, read with `weights_only=True` (no pickled code runs)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from segsort.io import DataError, atomic_path
from segsort.models import SegmentationNet, build_model, load_compatible_weights


def save_checkpoint(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise DataError(f"{path}: cannot load checkpoint ({err})") from err


def save_model(path: str | Path, model: SegmentationNet, name: str) -> None:
    save_checkpoint(path, {"name": name, "model_config": model.config, "model": model.state_dict()})


def load_model(path: str | Path) -> SegmentationNet:
    state = load_checkpoint(path)
    model = build_model(state["model_config"])
    model.load_state_dict(state["model"])
    return model.eval()


def load_model_with_head(path: str | Path, head: str, network: dict) -> tuple[SegmentationNet, list[str]]:
    """The checkpoint's network, which must be `network`, with a `head` head: the checkpoint's weights
    wherever they fit, a fresh head if the checkpoint's is of the other kind. Returns the model and the
    names of its freshly initialised tensors."""
    state = load_checkpoint(path)
    config = state["model_config"]
    if any(config.get(key) != value for key, value in network.items()):
        raise DataError(f"{path}: checkpoint of network {config}, not {network}")
    model = build_model({**config, "head": head})
    return model, load_compatible_weights(model, state["model"])


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
