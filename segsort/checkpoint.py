"""Model checkpoints: written atomically, read with `weights_only=True` (no pickled code runs)."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import torch

from segsort.io import DataError, atomic_path
from segsort.models import SegmentationNet, build_model, load_compatible_weights


def save_checkpoint(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


MODEL_ENTRIES = ("model_config", "model")  # what save_model writes, besides the run's name


def load_checkpoint(path: str | Path, entries: tuple[str, ...] = ()) -> dict:
    """The dictionary torch.save wrote to `path`; a file that is missing, damaged, of another kind or without
    `entries` is a DataError naming it, in one line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint is missing")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise DataError(f"{path}: not a SegSort checkpoint (not a file torch.save writes, or a truncated one)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or foreign files
        if str(err).startswith("Weights only load failed"):  # torch's advice, weights_only=False, would run its code
            reason = "it holds Python objects besides tensors and plain values, and no pickled code is run"
        else:  # the first sentence: torch's advice follows
            reason = str(err).strip().split("\n")[0].split(". ")[0] or type(err).__name__
        raise DataError(f"{path}: not a SegSort checkpoint ({reason})") from err
    if entries and not (isinstance(state, dict) and set(entries) <= set(state)):
        names = list(map(str, state)) if isinstance(state, dict) else []  # a state_dict has hundreds
        held = f"a dictionary with {', '.join(names[:5])}{', ...' if len(names) > 5 else ''}" \
            if isinstance(state, dict) else f"a {type(state).__name__}"
        raise DataError(f"{path}: not a SegSort checkpoint (it holds {held}, not {' and '.join(entries)})")
    return state


def save_model(path: str | Path, model: SegmentationNet, name: str) -> None:
    save_checkpoint(path, {"name": name, "model_config": model.config, "model": model.state_dict()})


def load_model(path: str | Path) -> SegmentationNet:
    state = load_checkpoint(path, MODEL_ENTRIES)
    model = build_model(state["model_config"])
    model.load_state_dict(state["model"])
    return model.eval()


def load_model_with_head(path: str | Path, head: str, network: dict) -> tuple[SegmentationNet, list[str]]:
    """The checkpoint's network, which must be `network`, with a `head` head: the checkpoint's weights
    wherever they fit, a fresh head if the checkpoint's is of the other kind. Returns the model and the
    names of its freshly initialised tensors."""
    state = load_checkpoint(path, MODEL_ENTRIES)
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
