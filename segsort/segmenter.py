"""One call from Python: a trained model and its prototype bank label an image, and say why.

    from segsort import Segmenter
    segmenter = Segmenter.load("model.pt", "bank.h5")    # on the GPU if there is one
    result = segmenter("photo.jpg")                       # a path, a PIL image or an (H, W, 3) uint8 array
    result.labels                                         # (H, W) uint8 class ids, as `segsort predict` writes them
    segment = result.segment_at(y, x)                     # the segment of a pixel: its k nearest bank segments

The labels are `segsort predict`'s: the active preset's inference settings (k-means, k of kNN, scales, flip,
the longest side an image is labelled at). The evidence is that of the single-scale, unmirrored view, as
`segsort explain` draws it: each k-means segment of the image with its k nearest bank rows (row, image id,
cosine similarity, label, provenance) and the vote count per class. With the default presets (one scale,
no mirror) that view is the whole prediction: each segment's pixels carry the class with most of its votes.
`segsort predict`, `segsort explain` and `segsort explore` all run through this class.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segsort.bank import Bank, Provenance, read_bank
from segsort.checkpoint import file_sha256, load_model
from segsort.data import class_names as dataset_class_names
from segsort.inference import (InferenceConfig, bounded, full_size, model_device, segsort_labels,
                               softmax_labels, view_votes)
from segsort.io import DataError, read_image
from segsort.stage import load_params, setup_torch, stage_device


@dataclass(frozen=True)
class Neighbour:
    """One of a segment's nearest bank segments."""
    index: int               # its row in the bank
    image_id: str            # the training image it comes from
    similarity: float        # cosine similarity of the two prototypes
    label: int               # its class: its vote
    provenance: Provenance = field(repr=False)  # segment id, bbox and support mask in its training image


@dataclass
class Segment:
    """One k-means segment of the image and its evidence."""
    id: int                  # its id in `Result.segment_map`
    label: int               # the class with most votes (ties: the lower class id)
    votes: np.ndarray        # (C,) its neighbours' labels counted; they sum to k
    neighbours: list[Neighbour]  # most similar first
    pixels: int              # its pixels in the view k-means segmented (the image at the preset's max_side)
    segment_map: np.ndarray = field(repr=False)  # the (H, W) segment ids it is one of

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: the segment's pixels."""
        return self.segment_map == self.id


@dataclass
class Result:
    labels: np.ndarray               # (H, W) uint8 class ids
    segment_map: np.ndarray | None   # (H, W) int32 segment ids of the single-scale view; None: no evidence
    segments: list[Segment]          # every segment with pixels, by id
    class_names: tuple[str, ...]

    def segment_at(self, y: int, x: int) -> Segment:
        """The segment of pixel (y, x)."""
        if self.segment_map is None:
            raise ValueError("this result holds no segments (a softmax model, or evidence=False)")
        wanted = int(self.segment_map[y, x])
        return next(s for s in self.segments if s.id == wanted)


def as_rgb(image) -> np.ndarray:
    """An image given as a path, a PIL image or an (H, W, 3) uint8 array, as a contiguous uint8 RGB array."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        if image.mode.startswith("I") or image.mode == "F":
            raise DataError(f"a {image.mode} PIL image: convert it to 8-bit RGB first, or give its file's path "
                            f"(read_image scales 16-bit values)")
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"an image array must be (H, W, 3) uint8 RGB, not {image.shape} {image.dtype}")
        return np.require(image, requirements=["C", "W"])  # a read-only array (np.asarray of a PIL image) copied
    raise TypeError(f"an image is a path, a PIL image or an (H, W, 3) uint8 array, not {type(image).__name__}")


def image_segments(model, image: np.ndarray, bank: Bank, config: InferenceConfig, num_classes: int,
                   neighbours: int | None = None) -> tuple[np.ndarray, list[Segment]]:
    """(segment ids (H, W), the segments that have pixels) of the single-scale, unmirrored view of `image`
    (as given: not bounded), each with its first `neighbours` (default: all k) nearest bank rows."""
    single_view = replace(config, scales=(1.0,), flip=False, max_side=None)
    segments, votes, sims, nearest = view_votes(model, image, bank.prototypes, bank.labels, single_view,
                                                num_classes)
    segments, votes, sims, nearest = (t.cpu().numpy() for t in (segments, votes, sims, nearest))
    segments = segments.astype(np.int32)
    sizes = np.bincount(segments.ravel(), minlength=len(votes))
    used = np.flatnonzero(sizes)
    shown = nearest.shape[1] if neighbours is None else min(neighbours, nearest.shape[1])
    rows, at = np.unique(nearest[used, :shown], return_inverse=True)  # a row retrieved twice is read once
    found = bank.provenance(rows.tolist())
    at = at.reshape(len(used), shown)
    result = []
    for i, s in enumerate(used.tolist()):
        result.append(Segment(s, int(votes[s].argmax()), votes[s], [
            Neighbour(found[j].index, found[j].image_id, similarity, found[j].label, found[j])
            for j, similarity in zip(at[i].tolist(), sims[s, :shown].tolist())], int(sizes[s]), segments))
    return segments, result


class Segmenter:
    """A model and, for a SegSort model, its prototype bank, with the inference settings of a preset."""

    def __init__(self, model, bank: Bank | None, config: InferenceConfig, class_names: tuple[str, ...]):
        self.model, self.bank, self.config, self.class_names = model, bank, config, tuple(class_names)

    @classmethod
    def load(cls, model_path: str | Path, bank_path: str | Path | None = None, device=None,
             params: str | Path | dict = "params.yaml") -> "Segmenter":
        """The model on `device` (default: a GPU if there is one, as the stages choose) and its bank (none
        for a softmax model), with `params`' active preset (a file, or parameters as load_params gives
        them). Sets torch's threads, seed and deterministic kernels as every stage does (setup_torch)."""
        params = params if isinstance(params, dict) else load_params(params)
        setup_torch(params)
        model = load_model(model_path).to(stage_device("auto" if device is None else str(device)))
        return cls.for_model(model, model_path, bank_path, params)

    @classmethod
    def for_model(cls, model, model_path: str | Path, bank_path: str | Path | None, params: dict) -> "Segmenter":
        """A loaded model (from `model_path`) with its bank at `bank_path`, which is refused if another model
        made it; a softmax model needs no bank."""
        config = InferenceConfig.from_params(params)
        if model.config["head"] == "softmax":
            return cls(model, None, config, dataset_class_names(params["dataset"], params["datasets"]))
        if bank_path is None:
            raise DataError(f"{model_path}: a SegSort model labels segments by kNN: give its prototype bank (--bank)")
        bank = read_bank(bank_path, expect={"model_sha256": file_sha256(model_path), "features": "embedding",
                                            "segmentation": "kmeans", "feature_dim": model.feature_dim("embedding")})
        return cls(model, bank.to(model_device(model)), config, tuple(json.loads(bank.attrs["class_names"])))

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def __call__(self, image, evidence: bool = True, neighbours: int | None = None) -> Result:
        """Labels of the image and, unless evidence=False, its segments with their evidence (the first
        `neighbours` of each segment's k nearest bank rows; default all k). A softmax model has no segments."""
        image = as_rgb(image)
        num_classes = len(self.class_names)
        if self.bank is None:
            return Result(softmax_labels(self.model, image, self.config), None, [], self.class_names)
        single_view = tuple(self.config.scales) == (1.0,) and not self.config.flip
        if not evidence:
            labels = segsort_labels(self.model, image, self.bank.prototypes, self.bank.labels, self.config,
                                    num_classes)
            return Result(labels, None, [], self.class_names)
        segment_map, segments = self.segments(image, neighbours)
        if single_view:  # the one view's votes are the prediction: each pixel takes its segment's majority
            winners = np.zeros(segment_map.max() + 1, dtype=np.uint8)
            winners[[s.id for s in segments]] = [s.label for s in segments]
            labels = full_size(winners[segment_map], image.shape)
        else:
            labels = segsort_labels(self.model, image, self.bank.prototypes, self.bank.labels, self.config,
                                    num_classes)
        if segment_map.shape != image.shape[:2]:  # labelled at max_side: ids resized back as the labels are
            segment_map = full_size(segment_map, image.shape)
            segments = [replace(s, segment_map=segment_map) for s in segments]
        return Result(labels, segment_map, segments, self.class_names)

    def segments(self, image, neighbours: int | None = None) -> tuple[np.ndarray, list[Segment]]:
        """(segment ids, segments with their evidence) of the image at the preset's longest side (max_side),
        without labelling it at every scale: what `segsort explain` draws."""
        if self.bank is None:
            raise DataError("a softmax model has no retrieved segments to explain its labels")
        small = bounded(as_rgb(image), self.config.max_side)
        return image_segments(self.model, small, self.bank, self.config, len(self.class_names), neighbours)
