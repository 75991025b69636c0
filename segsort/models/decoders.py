"""Segmentation decoders between a backbone and a head. Each takes the backbone's feature maps
(finest first) and their strides, and returns one feature map with `out_channels` channels at
`stride`."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation,
                                   bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PyramidDecoder(nn.Module):
    """Fuses the backbone levels of stride 8 and coarser at stride 8: lateral 1x1 convs, upsample,
    sum, 3x3 conv (the light decoder of the tiny-dataset network)."""

    stride = 8

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], out_channels: int):
        super().__init__()
        self.levels = [i for i, s in enumerate(strides) if s >= 8]
        if strides[self.levels[0]] != 8:
            raise ValueError("the pyramid decoder needs a stride-8 backbone level")
        self.laterals = nn.ModuleList(conv_bn_relu(channels[i], out_channels, 1) for i in self.levels)
        self.fuse = conv_bn_relu(out_channels, out_channels, 3)
        self.out_channels = out_channels

    def forward(self, features):
        size = features[self.levels[0]].shape[-2:]
        return self.fuse(sum(resize(lateral(features[i]), size) for lateral, i in zip(self.laterals, self.levels)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3): a 1x1 conv, three dilated 3x3 convs and image
    pooling in parallel, concatenated and projected by a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, rates: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(in_channels, out_channels, 1)] +
                                      [conv_bn_relu(in_channels, out_channels, 3, rate) for rate in rates])
        self.image_pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(in_channels, out_channels, 1))
        self.project = conv_bn_relu(out_channels * (len(rates) + 2), out_channels, 1)

    def forward(self, x):
        pooled = self.image_pooling(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabv3+: ASPP on the coarsest features, upsampled and fused with the stride-4 features
    (projected to 48 channels) by two 3x3 convs. Output at stride 4."""

    stride = 4

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], out_channels: int,
                 aspp_rates: tuple[int, ...] = (6, 12, 18), low_level_channels: int = 48):
        super().__init__()
        if strides[0] != 4:
            raise ValueError("DeepLabv3+ needs a stride-4 backbone level")
        self.aspp = ASPP(channels[-1], out_channels, tuple(aspp_rates))
        self.low_level = conv_bn_relu(channels[0], low_level_channels, 1)
        self.fuse = nn.Sequential(conv_bn_relu(out_channels + low_level_channels, out_channels, 3),
                                  conv_bn_relu(out_channels, out_channels, 3))
        self.out_channels = out_channels

    def forward(self, features):
        low_level = self.low_level(features[0])
        context = resize(self.aspp(features[-1]), low_level.shape[-2:])
        return self.fuse(torch.cat([context, low_level], dim=1))


class PyramidPoolingDecoder(nn.Module):
    """PSPNet: the coarsest features average-pooled into bins x bins grids, each reduced by a 1x1 conv
    to a quarter of the channels, upsampled and concatenated with the features, then a 3x3 conv and
    dropout. Output at the backbone's output stride (8 for PSPNet)."""

    def __init__(self, channels: tuple[int, ...], strides: tuple[int, ...], out_channels: int,
                 bins: tuple[int, ...] = (1, 2, 3, 6), dropout: float = 0.1):
        super().__init__()
        in_channels = channels[-1]
        self.stride = strides[-1]
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(in_channels, in_channels // 4, 1))
                                    for b in bins)
        self.bottleneck = conv_bn_relu(in_channels + len(bins) * (in_channels // 4), out_channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.out_channels = out_channels

    def forward(self, features):
        x = features[-1]
        pooled = [resize(stage(x), x.shape[-2:]) for stage in self.stages]
        return self.dropout(self.bottleneck(torch.cat([x, *pooled], dim=1)))


DECODERS = {"pyramid": PyramidDecoder, "deeplabv3plus": DeepLabV3PlusDecoder, "pspnet": PyramidPoolingDecoder}
