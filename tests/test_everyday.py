"""Everyday-photo augmentation: hidden joints keep their place and lose only `visible`; the pixels change only where
each transform says; enabling one transform leaves the other draws alone."""

from dataclasses import replace

import numpy as np
import pytest

from deeppose.data.everyday import (
    Everyday,
    apply_everyday,
    blur,
    colour_and_light,
    cut_by_frame,
    draw_everyday,
    jpeg,
    paste_occluder,
)
from deeppose.data.registry import load_dataset
from deeppose.data.torch_dataset import CropDataset
from deeppose.data.transforms import Augmentation, sample_params
from deeppose.geometry import normalized_to_crop_pixel

RNG = np.random.default_rng(5)
CROP = RNG.integers(1, 256, (40, 40, 3), dtype=np.uint8)  # no zero pixel, so a blanked one shows
JOINTS = np.array([[-0.45, 0.0], [0.0, 0.0], [0.45, 0.1], [0.1, 0.45], [0.1, -0.45]])


@pytest.mark.parametrize("side, hidden", [(0, [0]), (1, [2]), (2, [4]), (3, [3])])
def test_the_frame_cuts_one_side_and_hides_the_joints_beyond_it(side, hidden):
    out, gone = cut_by_frame(CROP, JOINTS, side, 0.2)
    assert np.flatnonzero(gone).tolist() == hidden
    blank = (out == 0).all(axis=2)
    # 20 % of 40 px: the 8 pixel rows or columns on that side are beyond the frame, the rest untouched
    band = {0: blank[:, :8], 1: blank[:, -8:], 2: blank[:8], 3: blank[-8:]}[side]
    assert band.all() and blank.sum() == 8 * 40
    assert (out[~blank] == CROP[~blank]).all()


def test_an_occluder_covers_an_ellipse_of_another_photo_and_the_joints_under_it():
    source = np.full((30, 50, 3), 7, np.uint8)
    out, covered = paste_occluder(CROP, JOINTS, source, (0.0, 0.0, 0.2, 0.1, 0.0, 0.5, 0.5))
    assert covered.tolist() == [False, True, False, False, False]
    changed = (out != CROP).any(axis=2)
    assert (out[changed] == 7).all()
    ys, xs = np.nonzero(changed)
    centre = normalized_to_crop_pixel(np.zeros(2), 40)
    # radii 0.2 and 0.1 of 40 px: the patch spans about 16 x 8 pixels around the centre
    assert abs(xs.mean() - centre[0]) < 0.6 and abs(ys.mean() - centre[1]) < 0.6
    assert 14 <= xs.max() - xs.min() + 1 <= 17 and 6 <= ys.max() - ys.min() + 1 <= 9


def test_photometric_transforms_keep_the_shape_and_change_what_they_say():
    grey = colour_and_light(CROP, 0.0, 1.0)
    assert (np.ptp(grey.astype(int), axis=2) <= 1).all()
    assert colour_and_light(CROP, 1.0, 1.0).tolist() == CROP.tolist()
    darker = colour_and_light(CROP, 1.0, 2.0)
    assert darker.mean() < CROP.mean() and darker.shape == CROP.shape
    assert blur(CROP, 2.0).std() < CROP.std()
    assert jpeg(CROP, 20).shape == CROP.shape and not np.array_equal(jpeg(CROP, 20), CROP)


def test_apply_keeps_joints_and_clears_visibility_only_where_hidden():
    visible = np.array([True, True, True, False, True])
    draw = Everyday(cut=(0, 0.2), saturation=0.5, blur_sigma=1.0, jpeg_quality=40)
    out, vis = apply_everyday(CROP, JOINTS, visible, draw)
    assert vis.tolist() == [False, True, True, False, True] and out.shape == CROP.shape
    with pytest.raises(ValueError, match="occluder"):
        apply_everyday(CROP, JOINTS, visible, Everyday(occluder=(0, 0, 0.1, 0.1, 0, 0.5, 0.5)))


def test_turning_a_transform_on_leaves_the_earlier_draws_as_they_were():
    base = Augmentation(30, (0.75, 1.25), 0.08, 0.5, 0.2, 0.2)
    plain = sample_params(np.random.default_rng(3), base)
    richer = sample_params(np.random.default_rng(3), replace(base, jpeg_prob=1.0, cut_prob=1.0))
    assert replace(richer, everyday=Everyday()) == plain and richer.everyday.cut is not None
    assert 15 <= richer.everyday.jpeg_quality <= 60
    assert draw_everyday(np.random.default_rng(0)) == Everyday()
    lying = [sample_params(np.random.default_rng(s), replace(base, lying_prob=1.0)).rotation_deg for s in range(20)]
    assert all(60 <= abs(r) <= 120 for r in lying)


def test_augmented_crops_keep_joints_where_the_geometry_puts_them(lsp_root):
    ds = load_dataset("lsp", lsp_root, "train").subset(range(12), "train")
    base = Augmentation(20, (0.8, 1.2), 0.1, 0.5)
    everyday = replace(base, cut_prob=1.0, occlude_prob=1.0, blur_prob=1.0, jpeg_prob=1.0, saturation=0.5)
    hidden = 0
    for a, b in zip(CropDataset(ds, 64, base, seed=2), CropDataset(ds, 64, everyday, seed=2)):
        assert np.array_equal(a["joints"].numpy(), b["joints"].numpy())
        assert np.array_equal(a["labelled"].numpy(), b["labelled"].numpy())
        assert not (b["visible"].numpy() & ~a["visible"].numpy()).any()  # visibility is only ever taken away
        assert not np.array_equal(a["image"].numpy(), b["image"].numpy())
        hidden += int((a["visible"].numpy() & ~b["visible"].numpy()).sum())
    assert hidden > 0
