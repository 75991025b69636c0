"""The paper's networks build, run forward and backward at the paper's VOC crop size, and load weights."""
import pytest
import torch
import torchvision

from segsort.io import DataError
from segsort.models import build_model, load_compatible_weights
from segsort.models.backbones import MobileNetV2Backbone

PAPER_CROP = 480  # VOC crop of the multi-GPU recipe (IMPLEMENTATION_NOTES.md)
NETWORKS = {  # name: (model params, output stride of the network's output)
    "DeepLabv3+ / MobileNetV2": ({"backbone": "mobilenet_v2", "output_stride": 16, "decoder": "deeplabv3plus",
                                  "decoder_channels": 256}, 4),
    "DeepLabv3+ / ResNet-101": ({"backbone": "resnet101", "output_stride": 16, "decoder": "deeplabv3plus",
                                 "decoder_channels": 256}, 4),
    "PSPNet / ResNet-101": ({"backbone": "resnet101", "output_stride": 8, "decoder": "pspnet",
                             "decoder_channels": 512}, 8),
    "EfficientNet-Lite0 pyramid": ({"backbone": "efficientnet_lite0", "output_stride": 32, "decoder": "pyramid",
                                    "decoder_channels": 128}, 8),
}


def config(name: str, head: str) -> dict:
    return {**NETWORKS[name][0], "embedding_dim": 32, "head": head, "num_classes": 21}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if "ResNet" in name else name
                                  for name in NETWORKS])
@pytest.mark.parametrize("head, channels", [("segsort", 32), ("softmax", 21)])
def test_forward_backward(name, head, channels):
    """Every network with either head, forward and backward, at a small crop to keep the test suite fast
    (the paper's crop: the next test)."""
    crop = 160
    torch.manual_seed(0)
    stride = NETWORKS[name][1]
    model = build_model(config(name, head)).train()
    images = torch.rand(2, 3, crop, crop) * 255  # batch 2: BatchNorm of the pooled 1x1 branches needs it
    output = model(images)
    assert output.shape == (2, channels, crop // stride, crop // stride) and model.stride == stride
    if head == "segsort":
        assert torch.allclose(output.norm(dim=1), torch.ones(()), atol=1e-5)
    output.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_the_papers_crop_keeps_the_output_stride(name):
    stride = NETWORKS[name][1]
    model = build_model(config(name, "segsort")).eval()
    with torch.no_grad():
        output = model(torch.rand(1, 3, PAPER_CROP, PAPER_CROP) * 255)
    assert output.shape == (1, 32, PAPER_CROP // stride, PAPER_CROP // stride)


def test_switching_heads_keeps_backbone_and_decoder():
    torch.manual_seed(0)
    segsort = build_model(config("DeepLabv3+ / MobileNetV2", "segsort"))
    softmax = build_model(config("DeepLabv3+ / MobileNetV2", "softmax"))
    fresh = load_compatible_weights(softmax, segsort.state_dict())
    assert sorted(fresh) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(softmax.decoder.aspp.project[0].weight, segsort.decoder.aspp.project[0].weight)
    assert load_compatible_weights(segsort, segsort.state_dict()) == []


def test_a_checkpoint_of_another_network_is_refused():
    other = build_model(config("EfficientNet-Lite0 pyramid", "segsort"))
    with pytest.raises(ValueError, match="does not fit"):
        load_compatible_weights(build_model(config("DeepLabv3+ / MobileNetV2", "segsort")), other.state_dict())


def test_dilated_mobilenet_keeps_stride_16():
    backbone = MobileNetV2Backbone(output_stride=16)
    low_level, high_level = backbone(torch.zeros(1, 3, 96, 96))
    assert low_level.shape[-2:] == (24, 24) and high_level.shape[-2:] == (6, 6)
    assert backbone.features[16].conv[1][0].dilation == (2, 2)


def test_torchvision_weights_offline_error_names_the_file(tmp_path, monkeypatch):
    """Offline, the error says where to put the file; once it is there, it is used."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    backbone = MobileNetV2Backbone(output_stride=16)

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("torch.hub.download_url_to_file", offline)
    expected = tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth"
    with pytest.raises(DataError, match=str(expected)):
        backbone.load_imagenet()

    reference = torchvision.models.mobilenet_v2()
    expected.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), expected)
    backbone.load_imagenet()
    assert torch.equal(backbone.features[5].conv[0][0].weight, reference.features[5].conv[0][0].weight)
