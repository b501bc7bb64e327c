import pytest
import torch

from deeppose.config import ModelConfig
from deeppose.geometry import cell_centres, crop_pixel_to_normalized
from deeppose.heads.dsnt import SoftArgmaxHead, dsnt, spatial_softmax
from deeppose.models.factory import create_model
from deeppose.models.mobilenet_v2 import MobileNetV2
from deeppose.models.resnet import ResNet


def test_dsnt_of_a_one_hot_map_is_that_cells_centre():
    maps = torch.zeros(1, 1, 5, 8)
    maps[0, 0, 3, 6] = 1.0
    x, y = dsnt(maps)[0, 0].tolist()
    assert x == pytest.approx((6 + 0.5) / 8 - 0.5) and y == pytest.approx((3 + 0.5) / 5 - 0.5)


def test_dsnt_of_a_symmetric_map_is_its_centre():
    g = torch.exp(-cell_centres(9) ** 2 * 40)
    maps = (g[:, None] * g[None, :])[None, None]
    torch.testing.assert_close(dsnt(maps / maps.sum()), torch.zeros(1, 1, 2), atol=1e-6, rtol=0)


def test_cell_centres_agree_with_the_crops_pixel_convention():
    # A 32-px crop read at stride 4: cell j covers crop pixels 4j .. 4j+3, whose centre is pixel 4j + 1.5.
    pixels = torch.tensor([[4 * j + 1.5, 0.0] for j in range(8)])
    torch.testing.assert_close(crop_pixel_to_normalized(pixels, (32, 32))[:, 0], cell_centres(8))


def test_spatial_softmax_sums_to_one_and_peaks_at_the_maximum():
    logits = torch.randn(2, 3, 6, 7)
    h = spatial_softmax(logits)
    torch.testing.assert_close(h.sum(dim=(-2, -1)), torch.ones(2, 3))
    assert torch.equal(h.flatten(2).argmax(-1), logits.flatten(2).argmax(-1))


@pytest.mark.parametrize("backbone", [MobileNetV2(), ResNet(18)])
def test_pyramid_equals_single_stride_features(backbone):
    backbone.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pyramid = backbone.forward_pyramid(x, (8, 16, 32))
        for s, f in zip((8, 16, 32), pyramid):
            torch.testing.assert_close(f, backbone.forward_features(x, s))
            assert f.shape[1] == backbone.feature_channels(s)


def test_head_reads_every_level_and_outputs_coordinates_inside_the_box():
    head = SoftArgmaxHead([32, 96, 1280], num_joints=14, width=16)
    feats = [torch.randn(2, 32, 8, 8), torch.randn(2, 96, 4, 4), torch.randn(2, 1280, 2, 2)]
    assert head.heatmap_logits(feats).shape == (2, 14, 8, 8)
    out = head(feats)
    assert out.shape == (2, 14, 2) and out.abs().max() < 0.5
    out.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_soft_argmax_regressor_and_bad_head_name():
    model = create_model(ModelConfig("mobilenet_v2", stride=8, reduce=16, head="soft_argmax"), 14, 64)
    assert model.head.strides == (8, 16, 32)
    assert model(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape == (2, 14, 2)
    with pytest.raises(ValueError, match="unknown head"):
        create_model(ModelConfig("mobilenet_v2", head="gaussian"), 14, 64)


def test_soft_argmax_regressor_learns_to_find_a_bright_square():
    torch.manual_seed(0)
    m = ModelConfig("mobilenet_v2", width=0.35, stride=8, reduce=16, head="soft_argmax", dropout=0.0)
    model = create_model(m, 1, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        centres = torch.randint(8, 56, (n, 2))
        images = torch.zeros(n, 3, 64, 64, dtype=torch.uint8)
        for img, (x, y) in zip(images, centres.tolist()):
            img[:, y - 4:y + 4, x - 4:x + 4] = 255
        return images, crop_pixel_to_normalized(centres.float() - 0.5, (64, 64))[:, None]

    test_images, test_target = batch(32)
    model.eval()
    with torch.no_grad():
        before = (model(test_images) - test_target).abs().mean().item()
    model.train()
    for _ in range(60):
        images, target = batch()
        loss = (model(images) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = (model(test_images) - test_target).abs().mean().item()
    assert after < 0.5 * before, (before, after)
