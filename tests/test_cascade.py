"""The DeepPose cascade: Eq. 6/7 round trips, batched sub-image crops, simulated boxes (Eq. 8), the Cascade module."""

import numpy as np
import pytest
import torch

from deeppose.geometry import crop_matrix, diam, joint_boxes, warp_images_torch
from deeppose.models.cascade import (
    Cascade,
    box_crops,
    refine,
    refinement_stage,
    refinement_target,
)
from deeppose.skeleton import get_skeleton
from deeppose.train.simulation import DisplacementStats, fit_displacements, sample_displacements, simulated_boxes

LSP = get_skeleton("lsp14")


def _pose(b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 14, 2, generator=g) - 0.5) * 0.6


def test_a_perfect_stage_prediction_leaves_the_joint_where_it_is():
    y = _pose(3)
    all_labelled = torch.ones(3, 14, dtype=torch.bool)
    boxes = joint_boxes(y, diam(y, all_labelled, LSP), 2.0)  # b_i centred on the true joints (Eq. 7)
    assert torch.allclose(refinement_target(y, boxes), torch.zeros_like(y))
    assert torch.allclose(refine(y, boxes, torch.zeros_like(y)), y)


def test_eq6_round_trip_from_a_displaced_prediction():
    y = _pose(4)
    y_prev = y + 0.05 * torch.randn(4, 14, 2, generator=torch.Generator().manual_seed(1))
    boxes = joint_boxes(y_prev, diam(y_prev, torch.ones(4, 14, dtype=torch.bool), LSP), 1.5)
    psi = refinement_target(y, boxes)  # what a perfect stage regresses
    assert torch.allclose(refine(y_prev, boxes, psi), y, atol=1e-6)
    # the displacement is measured in units of the box side
    assert torch.allclose(psi * boxes[..., 2:4], y - y_prev, atol=1e-6)


def test_box_units_map_to_the_right_pixels_of_the_sub_image():
    r, c = 128, 32
    sources = torch.zeros(1, 3, r, r, dtype=torch.uint8)
    dot = (83, 41)  # source pixel (x, y)
    sources[0, :, dot[1], dot[0]] = 255
    # a joint box whose centre is off the dot; the dot sits at the box coordinate refinement_target gives
    dot_u = torch.tensor([[(dot[0] + 0.5) / r - 0.5, (dot[1] + 0.5) / r - 0.5]])
    box = torch.tensor([[[dot_u[0, 0] - 0.03, dot_u[0, 1] + 0.02, 0.25, 0.25]]])
    crop = box_crops(sources, box, c)[0, 0]
    t = refinement_target(dot_u[None], box)[0, 0]
    expected = ((t + 0.5) * c - 0.5).numpy()  # crop pixel of the dot, from its box coordinates
    iy, ix = np.unravel_index(int(crop.argmax()), crop.shape)
    assert abs(ix - expected[0]) <= 1.0 and abs(iy - expected[1]) <= 1.0
    ys, xs = np.mgrid[0:c, 0:c]
    w = crop.numpy() / crop.numpy().sum()
    assert abs((w * xs).sum() - expected[0]) < 0.3 and abs((w * ys).sum() - expected[1]) < 0.3


def test_batched_crops_equal_one_crop_per_joint():
    g = torch.Generator().manual_seed(2)
    sources = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=g)
    y = _pose(3, seed=3)
    boxes = joint_boxes(y, diam(y, torch.ones(3, 14, dtype=torch.bool), LSP), 1.0)
    batched = box_crops(sources, boxes, 24)
    for n in range(3):
        for i in range(14):
            centre = (boxes[n, i, :2] + 0.5) * 64 - 0.5
            px = torch.cat([centre, boxes[n, i, 2:] * 64])[None]
            single = warp_images_torch(sources[n:n + 1].float() / 255, crop_matrix(px, (24, 24)), (24, 24))
            assert torch.allclose(batched[n * 14 + i], single[0], atol=1e-5)


def test_fit_recovers_a_known_normal_and_draws_match_it():
    rng = np.random.default_rng(0)
    n, k = 20000, 14
    gt = rng.uniform(50, 150, (n, k, 2))
    d = diam(gt, np.ones((n, k), bool), LSP)
    true_mean = rng.normal(0, 0.1, (k, 2))
    a = rng.normal(0, 0.15, (k, 2, 2))
    true_cov = a @ np.swapaxes(a, 1, 2) + 0.01 * np.eye(2)
    disp = np.stack([rng.multivariate_normal(true_mean[i], true_cov[i], n) for i in range(k)], axis=1)
    pred = gt + disp * d[:, None, None]
    labelled = np.ones((n, k), bool)
    labelled[:100, 3] = False  # unlabelled joints are left out of the fit
    stats = fit_displacements(pred, gt, labelled, LSP)
    assert stats.count[3] == n - 100 and stats.count[0] == n
    assert np.abs(stats.mean - true_mean).max() < 0.01
    assert np.abs(stats.cov - true_cov).max() < 0.01
    # draws from the fitted Normal have its mean and covariance
    draws = sample_displacements(stats, (50000,), torch.Generator().manual_seed(0)).double().numpy()
    assert np.abs(draws.mean(0) - stats.mean).max() < 0.01
    emp = np.einsum("nki,nkj->kij", draws - draws.mean(0), draws - draws.mean(0)) / (len(draws) - 1)
    assert np.abs(emp - stats.cov).max() < 0.01
    # and the statistics survive the checkpoint's JSON
    again = DisplacementStats.from_dict(stats.to_dict())
    assert np.allclose(again.cov, stats.cov) and np.array_equal(again.count, stats.count)


def test_simulated_boxes_are_centred_on_the_true_joint_plus_a_scaled_draw():
    stats = DisplacementStats(np.full((14, 2), 0.1), np.tile(np.eye(2) * 1e-4, (14, 1, 1)), np.full(14, 10))
    y = _pose(2)
    d = torch.tensor([0.2, 0.4])
    boxes = simulated_boxes(y, d, stats, sigma=2.0, draws=500, generator=torch.Generator().manual_seed(0))
    assert boxes.shape == (2, 500, 14, 4)
    offset = (boxes[..., :2] - y[:, None]).mean(1) / d[:, None, None]
    assert torch.allclose(offset, torch.full_like(offset, 0.1), atol=0.01)
    assert torch.allclose(boxes[..., 2], 2.0 * d[:, None, None].expand(2, 500, 14))


def test_fit_refuses_a_joint_without_data():
    gt = np.random.default_rng(0).uniform(0, 100, (5, 14, 2))
    labelled = np.ones((5, 14), bool)
    labelled[:, 6] = False
    with pytest.raises(ValueError, match="r_wrist"):
        fit_displacements(gt, gt, labelled, LSP)


class _Shift(torch.nn.Module):
    """A fake stage: maps anything to a constant per-joint output."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out.expand(len(x), *self.out.shape)


def test_cascade_applies_each_stage_in_turn():
    y1 = _pose(1)[0]
    stage1 = _Shift(y1)
    step = torch.full((14, 2), 0.1)
    cascade = Cascade(stage1, [_Shift(step), _Shift(step)], LSP, sigma=1.0, crop_size=16, source_size=32)
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    sources = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    out = cascade(images, sources)
    assert out.shape == (2, 3, 14, 2)
    all_labelled = torch.ones(14, dtype=torch.bool)
    d1 = diam(y1, all_labelled, LSP)
    assert torch.allclose(out[0, 1], y1 + 0.1 * d1, atol=1e-6)
    d2 = diam(out[0, 1], all_labelled, LSP)
    assert torch.allclose(out[0, 2], out[0, 1] + 0.1 * d2, atol=1e-6)
    assert torch.equal(cascade(images, sources, stages=1)[:, 0], out[:, 0])
    with pytest.raises(ValueError, match="sources"):
        cascade(images, torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="stages"):
        cascade(images, sources, stages=4)
    # the stage function equals the module's step
    assert torch.allclose(refinement_stage(_Shift(step), sources, out[:, 0], LSP, 1.0, 16), out[:, 1])


def test_a_stage_on_a_joint_subset_moves_only_those_joints():
    y1 = _pose(1)[0]
    step = torch.full((14, 2), 0.1)
    sources = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    y_prev = y1.expand(2, 14, 2)
    wrists = torch.tensor([LSP.index("r_wrist"), LSP.index("l_wrist")])
    full = refinement_stage(_Shift(step), sources, y_prev, LSP, 1.0, 16)
    part = refinement_stage(_Shift(step), sources, y_prev, LSP, 1.0, 16, wrists)
    others = torch.ones(14, dtype=torch.bool)
    others[wrists] = False
    assert torch.equal(part[:, wrists], full[:, wrists])
    assert torch.equal(part[:, others], y_prev[:, others])
    cascade = Cascade(_Shift(y1), [_Shift(step)], LSP, sigma=1.0, crop_size=16, source_size=32,
                      joints=wrists.tolist())
    assert torch.equal(cascade(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), sources)[:, 1], part)
    with pytest.raises(ValueError, match="joints"):
        Cascade(_Shift(y1), [], LSP, sigma=1.0, crop_size=16, source_size=32, joints=[14])
