"""Segmentation networks: a backbone, a decoder to stride 8, and a SegSort embedding head."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from segsort.models.efficientnet_lite import EfficientNetLite0, load_imagenet_weights

BACKBONES = {"efficientnet_lite0": EfficientNetLite0}


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class PyramidDecoder(nn.Module):
    """Fuses the stride-8/16/32 backbone features at stride 8 (lateral 1x1 convs, upsample, sum, 3x3 conv)."""

    def __init__(self, in_channels: tuple[int, ...], channels: int):
        super().__init__()
        self.laterals = nn.ModuleList(conv_bn_relu(c, channels, 1) for c in in_channels)
        self.fuse = conv_bn_relu(channels, channels, 3)

    def forward(self, features):
        size = features[0].shape[-2:]
        x = sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False)
                for lat, f in zip(self.laterals, features))
        return self.fuse(x)


class SegSortNet(nn.Module):
    """Backbone + decoder + a 1x1 embedding head whose output is L2-normalised (the paper's v, Sec. 3.1).

    `forward` returns unit embeddings (B, D, H/8, W/8). `backbone_features` returns the ImageNet
    features themselves (stride 8, the three levels concatenated and L2-normalised), which Table 3's
    first row clusters without any training.
    """

    def __init__(self, backbone: str, embedding_dim: int, decoder_channels: int):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose from {sorted(BACKBONES)}")
        self.backbone = BACKBONES[backbone]()
        self.decoder = PyramidDecoder(self.backbone.channels, decoder_channels)
        self.embedding = nn.Conv2d(decoder_channels, embedding_dim, 1)
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 3, 1, 1), persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """RGB float images in [0, 255] (B, 3, H, W) -> the backbone's input normalisation."""
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.normalise(images))
        return F.normalize(self.embedding(self.decoder(features)), dim=1)

    @torch.no_grad()
    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.normalise(images))
        size = features[0].shape[-2:]
        levels = [F.normalize(F.interpolate(f, size=size, mode="bilinear", align_corners=False), dim=1)
                  for f in features]
        return F.normalize(torch.cat(levels, dim=1), dim=1)

    def feature_dim(self, kind: str) -> int:
        """Width of `forward` ("embedding") or of `backbone_features` ("backbone")."""
        return self.embedding.out_channels if kind == "embedding" else sum(self.backbone.channels)

    def head_parameters(self):
        """Parameters trained with the larger learning rate (everything but the pretrained backbone)."""
        return [p for name, p in self.named_parameters() if not name.startswith("backbone.")]


def build_model(model_cfg: dict, imagenet: bool = False) -> SegSortNet:
    model = SegSortNet(model_cfg["backbone"], model_cfg["embedding_dim"], model_cfg["decoder_channels"])
    model.config = dict(model_cfg)  # saved with the weights, so a checkpoint rebuilds its own network
    if imagenet:
        load_imagenet_weights(model.backbone)
    return model
