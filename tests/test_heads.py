"""The heatmap (Tompson) and DSNT heads, position refinement, per-joint confidence and the head objectives."""

import math

import pytest
import torch

from deeppose.config import HeatmapLossConfig, ModelConfig
from deeppose.errors import DeepPoseError
from deeppose.heads import objective
from deeppose.heads.base import HeadOutput, head_output
from deeppose.heads.dsnt import dsnt_regularizer, mass_near, spatial_softmax
from deeppose.heads.fc import SCORE_RADIUS, score_bce
from deeppose.heads.heatmap import PositionRefinement, crop_windows, heatmap_mse, window_target
from deeppose.heads.losses import euclidean_loss
from deeppose.heads.maps import gaussian_heatmaps
from deeppose.models.checkpoint import model_from_meta
from deeppose.models.factory import create_model
from deeppose.models.meta import meta_from_dict
from deeppose.models.resnet import ResNet

IMAGES = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)


@pytest.mark.parametrize(("head", "kw", "maps"), [
    ("fc", {"stride": 32, "score": True}, None),
    ("dsnt", {"stride": 8}, 8),
    ("dsnt", {"stride": 32}, 2),
    ("heatmap", {"stride": 4}, 16),
    ("heatmap", {"stride": 8, "refine": True}, 8),
])
@pytest.mark.parametrize("arch", ["mobilenet_v2", "resnet18"])
def test_every_head_gives_joints_and_a_confidence_in_0_1(arch, head, kw, maps):
    model = create_model(ModelConfig(arch, head=head, reduce=16, **kw), 14, 64).eval()
    with torch.no_grad():
        out = model.output(IMAGES)
        plain = model(IMAGES)
    assert out.joints.shape == (2, 14, 2) and torch.allclose(out.joints, plain, atol=1e-6)
    # each head's confidence is what its paper's read-out says
    expected = {"fc": lambda: torch.sigmoid(out.score_logits),
                "dsnt": lambda: mass_near(spatial_softmax(out.logits), out.joints),
                "heatmap": lambda: out.logits.amax(dim=(-2, -1)).clamp(0, 1)}[head]()
    assert out.confidence.shape == (2, 14) and torch.allclose(out.confidence, expected, atol=1e-6)
    assert (out.logits is None) == (maps is None)
    if maps:
        assert out.logits.shape == (2, 14, maps, maps)
    assert (out.fine is not None) == bool(kw.get("refine"))


def test_refinement_needs_the_heatmap_head():
    with pytest.raises(ValueError, match="heatmap head"):
        create_model(ModelConfig("mobilenet_v2", head="dsnt", stride=8, refine=True), 14, 64)


def test_resnet_has_a_stride_4_level():
    feats = ResNet(18).forward_pyramid(torch.zeros(1, 3, 64, 64), (4, 8, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 16, 16), (128, 8, 8), (512, 2, 2)]


def test_an_fc_checkpoint_without_a_score_still_loads_and_reports_unknown_confidence():
    old = {"arch": "mobilenet_v2", "model": {"arch": "mobilenet_v2", "head": "fc", "stride": 32, "reduce": 16},
           "num_joints": 14, "skeleton": "lsp14", "input_size": 64}  # schema 1, written before scores
    model = model_from_meta(meta_from_dict(old)).eval()
    assert model.head.score is None and not any("score" in k for k in model.state_dict())
    with torch.no_grad():
        assert torch.isnan(head_output(model, IMAGES).confidence).all()


def test_select_reads_output_i_of_item_i():
    joints = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)
    out = HeadOutput(joints, torch.rand(3, 4), logits=torch.rand(3, 4, 5, 5)).select(torch.tensor([2, 0, 3]))
    assert out.joints.shape == (3, 1, 2) and out.logits.shape == (3, 1, 5, 5) and out.fine is None
    assert torch.equal(out.joints[:, 0], joints[[0, 1, 2], [2, 0, 3]])


def test_window_crops_sample_the_features_at_the_right_place_and_match_per_joint_crops():
    # a feature map whose two channels are the box-normalized x and y of each cell centre
    n = 20
    c = (torch.arange(n, dtype=torch.float32) + 0.5) / n - 0.5
    features = torch.stack([c[None, :].expand(n, n), c[:, None].expand(n, n)])[None].repeat(2, 1, 1, 1)
    centres = torch.tensor([[[0.1, -0.2], [0.0, 0.0], [-0.15, 0.2]], [[0.05, 0.05], [0.2, -0.1], [-0.2, -0.2]]])
    crops = crop_windows(features, centres, side=0.2, size=5)  # (6, 2, 5, 5)
    assert crops.shape == (6, 2, 5, 5)
    # the middle sample of each window is its centre; samples are side / size apart
    assert torch.allclose(crops[:, :, 2, 2], centres.reshape(6, 2), atol=1e-5)
    assert torch.allclose(crops[:, 0, 2, 3] - crops[:, 0, 2, 2], torch.full((6,), 0.04), atol=1e-5)
    for i in range(2):
        for k in range(3):
            alone = crop_windows(features[i:i + 1], centres[i:i + 1, k:k + 1], side=0.2, size=5)
            assert torch.allclose(alone[0], crops[i * 3 + k], atol=1e-6)


def test_position_refinement_reads_its_own_joint_map():
    refine = PositionRefinement(4, num_joints=3, size=6).eval()
    crops = torch.randn(2 * 3, 4, 6, 6)
    with torch.no_grad():
        fine = refine(crops, 3)
        full = refine.net(crops)
    assert fine.shape == (2, 3, 6, 6)
    assert torch.equal(fine[1, 2], full[5, 2]) and torch.equal(fine[0, 1], full[1, 1])


def test_a_heatmap_model_moves_its_joint_by_the_fine_maximum():
    model = create_model(ModelConfig("mobilenet_v2", head="heatmap", stride=8, reduce=16, refine=True), 2, 64).eval()
    with torch.no_grad():
        out = model.output(IMAGES)
    from deeppose.heads.heatmap import argmax_decode

    coarse, _ = argmax_decode(out.logits)
    offset, _ = argmax_decode(out.fine)
    assert torch.allclose(out.windows[..., :2], coarse)
    assert torch.allclose(out.joints, coarse + offset * out.windows[..., 2:])


def test_mass_near_is_the_confidence_of_a_tight_or_a_flat_map():
    y = torch.tensor([[[0.1, -0.1]]])
    tight = gaussian_heatmaps(y, (20, 20), 0.3, normalize=True)
    flat = torch.full((1, 1, 20, 20), 1 / 400)
    assert mass_near(tight, y).item() > 0.99
    assert mass_near(flat, y).item() < 0.05


def test_objective_terms_vanish_at_their_optimum():
    y = torch.rand(2, 3, 2) * 0.8 - 0.4
    assert heatmap_mse(gaussian_heatmaps(y, (16, 16), 1.5), y, 1.5).abs().max() < 1e-6
    assert heatmap_mse(torch.zeros(2, 3, 16, 16), y, 1.5).min() > 1.0
    logits = torch.log(gaussian_heatmaps(y, (16, 16), 1.0, normalize=True) + 1e-30)
    assert dsnt_regularizer(logits, y, 1.0, "js").abs().max() < 1e-4
    assert dsnt_regularizer(torch.zeros(2, 3, 16, 16), y, 1.0, "js").min() > 0.1
    # a Gaussian far from the border has variance sigma^2 along x and y
    centre = torch.zeros(1, 1, 2)
    logits = torch.log(gaussian_heatmaps(centre, (32, 32), 2.0, normalize=True))
    assert dsnt_regularizer(logits, centre, 2.0, "variance").item() < 1e-3
    assert dsnt_regularizer(logits, centre, 1.0, "variance").item() > 1.0
    assert math.isclose(euclidean_loss(torch.tensor([[[0.3, 0.4]]]), torch.zeros(1, 1, 2)).item(), 0.5, rel_tol=1e-6)


def test_the_score_learns_whether_a_joint_is_within_the_radius():
    target = torch.zeros(1, 2, 2)
    joints = torch.tensor([[[SCORE_RADIUS / 2, 0.0], [SCORE_RADIUS * 2, 0.0]]])
    big = torch.tensor([[20.0, -20.0]])
    assert score_bce(big, joints, target).max() < 1e-6  # right about both
    assert score_bce(-big, joints, target).min() > 10  # wrong about both


def test_window_targets_are_in_window_units():
    windows = torch.tensor([[[0.1, 0.1, 0.2, 0.2]]])
    assert torch.allclose(window_target(torch.tensor([[[0.2, 0.0]]]), windows), torch.tensor([[[0.5, -0.5]]]))


def test_the_objective_of_each_head_adds_its_terms():
    y = torch.zeros(1, 2, 2)
    hm = HeatmapLossConfig(sigma=1.0, regularizer="js", weight=2.0)
    logits = torch.zeros(1, 2, 8, 8)
    joints = torch.full((1, 2, 2), 0.1)
    out = HeadOutput(joints, torch.rand(1, 2), logits=logits)
    coordinate = euclidean_loss(joints, y)
    assert torch.allclose(objective("soft_argmax", "euclidean", hm)(out, y), coordinate)
    assert torch.allclose(objective("dsnt", "euclidean", hm)(out, y),
                          coordinate + 2.0 * dsnt_regularizer(logits, y, 1.0, "js"))
    assert torch.allclose(objective("heatmap", "mse", hm)(out, y), heatmap_mse(logits, y, 1.0))
    # the DSNT transform of the same logits is what the regularizer sees
    assert torch.allclose(spatial_softmax(logits).sum((-2, -1)), torch.ones(1, 2))


@pytest.mark.parametrize(("head", "loss", "reg", "match"), [
    ("heatmap", "l1", "js", "heatmap head trains with loss 'mse'"),
    ("fc", "mse", "js", "unknown loss 'mse'"),
    ("dsnt", "euclidean", "kl", "regularizer"),
])
def test_objective_config_errors(head, loss, reg, match):
    with pytest.raises(DeepPoseError, match=match):
        objective(head, loss, HeatmapLossConfig(regularizer=reg))
