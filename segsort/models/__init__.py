"""Segmentation networks: an ImageNet backbone, a decoder, and one of two interchangeable heads.

The SegSort head (paper Sec. 3.1) is a 1x1 conv to `embedding_dim` channels whose output is
L2-normalised, so every pixel is a unit vector v_i. The softmax head is a 1x1 conv to class logits:
the pixel-wise cross-entropy baseline of the same network.

Architectures (the `architectures` section of params.yaml): DeepLabv3+ on MobileNetV2 or ResNet-101
(output stride 16, ASPP 6/12/18), PSPNet on dilated ResNet-101 (output stride 8, bins 1/2/3/6, 512
channels), and EfficientNet-Lite0 with a light pyramid decoder (the tiny dataset's network).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from segsort.models.backbones import BACKBONES
from segsort.models.decoders import DECODERS

HEADS = ("segsort", "softmax")
DECODER_NAMES = {"deeplabv3plus": "DeepLabv3+", "pspnet": "PSPNet", "pyramid": "Pyramid"}
BACKBONE_NAMES = {"mobilenet_v2": "MNV2", "resnet101": "ResNet-101", "efficientnet_lite0": "EfficientNet-Lite0",
                  "efficientnet_lite2": "EfficientNet-Lite2"}


def network_label(config: dict) -> str:
    """'DeepLabv3+ / MNV2' for a model config; unknown parts are shown by their config name."""
    decoder, backbone = config["decoder"], config["backbone"]
    return f"{DECODER_NAMES.get(decoder, decoder)} / {BACKBONE_NAMES.get(backbone, backbone)}"


class SegmentationNet(nn.Module):
    """`forward` maps RGB images in [0, 255] (B, 3, H, W) to unit embeddings (B, D, H/s, W/s) or to
    class logits (B, C, H/s, W/s), s being the decoder's stride. `backbone_features` returns the
    ImageNet features themselves (Table 3's first row clusters them without any training)."""

    def __init__(self, config: dict):
        super().__init__()
        if config["backbone"] not in BACKBONES or config["decoder"] not in DECODERS or config["head"] not in HEADS:
            raise ValueError(f"unknown network {config}: backbones {sorted(BACKBONES)}, "
                             f"decoders {sorted(DECODERS)}, heads {list(HEADS)}")
        self.config = dict(config)  # saved with the weights, so a checkpoint rebuilds its own network
        self.backbone = BACKBONES[config["backbone"]](config["output_stride"])
        self.decoder = DECODERS[config["decoder"]](self.backbone.channels, self.backbone.strides,
                                                   config["decoder_channels"], **config.get("decoder_options", {}))
        if config["head"] == "segsort":
            self.embedding = nn.Conv2d(self.decoder.out_channels, config["embedding_dim"], 1)
        else:
            self.classifier = nn.Conv2d(self.decoder.out_channels, config["num_classes"], 1)
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 3, 1, 1), persistent=False)

    @property
    def stride(self) -> int:
        return self.decoder.stride

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.decoder(self.backbone(self.normalise(images)))
        if self.config["head"] == "segsort":
            # The embedding head and its normalisation in float32, even under bfloat16 autocast, as the
            # paper's float32 training: the unit vectors k-means and the vMF losses compare.
            with torch.autocast(x.device.type, enabled=False):
                return F.normalize(self.embedding(x.float()), dim=1)
        return self.classifier(x)

    @torch.no_grad()
    def backbone_features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone levels of stride 8 and coarser, each L2-normalised, resized to stride 8 and
        concatenated, then L2-normalised again."""
        features = self.backbone(self.normalise(images))
        size = (math.ceil(images.shape[-2] / 8), math.ceil(images.shape[-1] / 8))
        levels = [F.normalize(F.interpolate(f, size=size, mode="bilinear", align_corners=False), dim=1)
                  for f, stride in zip(features, self.backbone.strides) if stride >= 8]
        return F.normalize(torch.cat(levels, dim=1), dim=1)

    def feature_dim(self, features: str) -> int:
        """Width of `forward` ("embedding") or of `backbone_features` ("backbone")."""
        if features == "embedding":
            return self.embedding.out_channels
        return sum(c for c, s in zip(self.backbone.channels, self.backbone.strides) if s >= 8)

    def head_parameters(self):
        """Parameters trained with the larger learning rate (everything but the pretrained backbone)."""
        return [p for name, p in self.named_parameters() if not name.startswith("backbone.")]


def network_config(network: dict, head: str, embedding_dim: int, num_classes: int) -> dict:
    """The full network description saved in a checkpoint: a network of params.yaml plus its head."""
    return {**network, "head": head, "embedding_dim": embedding_dim, "num_classes": num_classes}


def build_model(config: dict, imagenet: bool = False) -> SegmentationNet:
    model = SegmentationNet(config)
    if imagenet:
        model.backbone.load_imagenet()
    return model


def load_compatible_weights(model: SegmentationNet, state: dict) -> list[str]:
    """Copy `state` into `model` where names and shapes agree (backbone, decoder, and the head when
    the checkpoint has the same head). Returns the names left at their fresh initialisation, which
    may only be the model's head: a different backbone or decoder is an error."""
    own = model.state_dict()
    fresh = [name for name in own if name not in state or state[name].shape != own[name].shape]
    foreign = [name for name in fresh if not name.startswith(("embedding.", "classifier."))]
    if foreign:
        raise ValueError(f"checkpoint does not fit this network: {foreign[:5]} ...")
    model.load_state_dict({name: value for name, value in state.items() if name in own and name not in fresh},
                          strict=False)
    return fresh
