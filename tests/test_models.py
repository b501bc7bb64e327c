import pytest
import torch

from deeppose.config import ModelConfig
from deeppose.errors import DeepPoseError
from deeppose.heads import head_output
from deeppose.models.factory import ARCHS, count_parameters, create_model, load_backbone_weights
from deeppose.models.mobilenet_v2 import MobileNetV2
from deeppose.models.resnet import ResNet
from deeppose.paths import weights_root

SIZES = {"deeppose-alexnet": 220, "small": 64}


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shape_and_every_parameter_gets_a_gradient(arch):
    size = SIZES.get(arch, 64)
    model = create_model(ModelConfig(arch), 14, size)
    images = torch.randint(0, 255, (2, 3, size, size), dtype=torch.uint8)
    out = model(images)
    assert out.shape == (2, 14, 2) and torch.isfinite(out).all()
    full = head_output(model, images)  # the learned score too, where the head has one
    (full.joints.sum() + torch.nan_to_num(full.confidence).sum()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None
               and not n.startswith(("backbone.classifier.", "backbone.fc."))]
    assert not missing, missing


def test_deeppose_alexnet_matches_the_papers_layers():
    model = create_model(ModelConfig("deeppose-alexnet"), 14, 220)
    x = model.normalize(torch.zeros(1, 3, 220, 220, dtype=torch.uint8))
    assert model.features[:3](x).shape == (1, 96, 55, 55)   # C(55x55x96, 11x11/4) + LRN
    assert model.features[:7](x).shape == (1, 256, 27, 27)  # P, C(27x27x256, 5x5), LRN
    assert model.features(x).shape == (1, 256, 6, 6)
    assert [m.p for m in model.classifier if isinstance(m, torch.nn.Dropout)] == [0.6, 0.6]
    # 5 conv + 3 linear layers as listed; the paper's "about 40M" undercounts its own F(4096) on 6x6x256.
    assert count_parameters(model) == 58_396_060
    with pytest.raises(ValueError, match="220"):
        create_model(ModelConfig("deeppose-alexnet"), 14, 160)


@pytest.mark.parametrize("depth, n_params, n_keys", [(18, 11_689_512, 122), (34, 21_797_672, 218),
                                                     (50, 25_557_032, 320)])
def test_resnet_matches_torchvision_layout(depth, n_params, n_keys):
    model = ResNet(depth)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert len(model.state_dict()) == n_keys and "layer4.1.bn2.running_var" in model.state_dict()


def test_backbone_weights_round_trip_and_mismatch(tmp_path):
    src = MobileNetV2()
    torch.save(src.state_dict(), tmp_path / "mnv2.pth")
    dst = MobileNetV2()
    load_backbone_weights(dst, tmp_path / "mnv2.pth")
    torch.testing.assert_close(dst.features[5].conv[1][0].weight, src.features[5].conv[1][0].weight)
    torch.save(ResNet(18).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(DeepPoseError, match="r18.pth: does not fit MobileNetV2: missing"):
        load_backbone_weights(MobileNetV2(), tmp_path / "r18.pth")
    with pytest.raises(DeepPoseError, match="not found"):
        load_backbone_weights(MobileNetV2(), tmp_path / "none.pth")


@pytest.mark.shared_data
def test_shared_mobilenet_weights_load(shared_data):
    path = weights_root() / "mobilenet_v2_from_tflite_quant_dequantized.pth"
    if not path.is_file():
        pytest.fail(f"{path} missing beside the datasets")
    model = create_model(ModelConfig("mobilenet_v2"), 14, 160, backbone_weights=path)
    ref = torch.load(path, weights_only=True)
    torch.testing.assert_close(model.backbone.features[0][0].weight, ref["features.0.0.weight"])


def test_feature_strides():
    m = MobileNetV2()
    x = torch.zeros(1, 3, 64, 64)
    assert [m.forward_features(x, s).shape[-1] for s in (8, 16, 32)] == [8, 4, 2]
    assert [m.feature_channels(s) for s in (8, 16, 32)] == [32, 96, 1280]
    r = ResNet(18)
    assert [r.forward_features(x, s).shape[1] for s in (8, 16, 32)] == [128, 256, 512]


def test_freeze_bn_keeps_backbone_statistics_and_trains_the_head():
    model = create_model(ModelConfig("mobilenet_v2", freeze_bn=True), 14, 64).train()
    backbone_bn = model.backbone.features[3].conv[0][1]
    head_bn = model.head.reduce[1]
    before_backbone, before_head = backbone_bn.running_mean.clone(), head_bn.running_mean.clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randint(0, 255, (4, 3, 64, 64), dtype=torch.uint8)).sum().backward()
    opt.step()
    assert model.training and not backbone_bn.training and head_bn.training
    torch.testing.assert_close(backbone_bn.running_mean, before_backbone)
    assert not torch.equal(head_bn.running_mean, before_head)
    assert backbone_bn.weight.grad is not None  # affine parameters still learn
    unfrozen = create_model(ModelConfig("mobilenet_v2"), 14, 64).train()
    assert unfrozen.backbone.features[3].conv[0][1].training
