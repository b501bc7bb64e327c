import math

import pytest
import torch

from deeppose.geometry import cell_centres, crop_pixel_to_normalized, normalized_to_crop_pixel
from deeppose.heads.dsnt import dsnt, heatmap_variance, js_divergence
from deeppose.heads.heatmap import argmax_decode
from deeppose.heads.maps import gaussian_heatmaps


def _joints(b: int, k: int, margin: float = 0.3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, k, 2, generator=g) - 0.5) * 2 * margin


def test_cell_coordinates_round_trip_and_match_the_cell_centres():
    y = _joints(3, 5)
    torch.testing.assert_close(crop_pixel_to_normalized(normalized_to_crop_pixel(y, (9, 7)), (9, 7)), y)
    centres = torch.stack([cell_centres(9), torch.zeros(9)], dim=-1)
    torch.testing.assert_close(normalized_to_crop_pixel(centres, (9, 7))[:, 0], torch.arange(9.0))


@pytest.mark.parametrize("shape,sigma", [((16, 16), 1.0), ((32, 24), 1.5), ((8, 8), 1.0)])
def test_gaussian_encode_then_argmax_decode_is_sub_cell_exact(shape, sigma):
    y = _joints(4, 14, margin=0.35)
    decoded, peak = argmax_decode(gaussian_heatmaps(y, shape, sigma))
    cell = 1.0 / max(shape)
    assert (decoded - y).abs().max() < 0.01 * cell
    assert peak.min() > math.exp(-0.5 * 0.5 ** 2 / sigma ** 2 * 2) - 1e-6  # the peak is at most half a cell off


def test_a_flat_neighbourhood_decodes_to_the_maximum_cell():
    maps = torch.zeros(1, 1, 5, 5)
    maps[0, 0, 2, 3] = 1.0
    x, y = argmax_decode(maps)[0][0, 0].tolist()
    assert (x, y) == pytest.approx((cell_centres(5)[3].item(), cell_centres(5)[2].item()), abs=1e-6)
    # on the border the maximum cell itself is returned
    maps = torch.zeros(1, 1, 4, 4)
    maps[0, 0, 0, 3] = 1.0
    assert argmax_decode(maps)[0][0, 0].tolist() == pytest.approx([0.375, -0.375])


def test_normalized_gaussians_sum_to_one_and_dsnt_finds_their_centre():
    y = _joints(2, 3, margin=0.25)
    maps = gaussian_heatmaps(y, (32, 32), 1.0, normalize=True)
    torch.testing.assert_close(maps.sum(dim=(-2, -1)), torch.ones(2, 3))
    torch.testing.assert_close(dsnt(maps), y, atol=1e-4, rtol=0)
    var = heatmap_variance(maps)
    torch.testing.assert_close(var, torch.ones_like(var), atol=1e-3, rtol=0)


def test_js_divergence_is_zero_for_the_target_and_positive_otherwise():
    y = _joints(2, 3)
    target = gaussian_heatmaps(y, (16, 16), 1.0, normalize=True)
    assert js_divergence(target, target).abs().max() < 1e-6
    wider = gaussian_heatmaps(y, (16, 16), 2.0, normalize=True)
    shifted = gaussian_heatmaps(y + 0.1, (16, 16), 1.0, normalize=True)
    assert (js_divergence(wider, target) > 0.01).all() and (js_divergence(shifted, target) > 0.01).all()
    # symmetric, and bounded by ln 2 (disjoint supports)
    torch.testing.assert_close(js_divergence(wider, target), js_divergence(target, wider))
    far = torch.zeros(1, 1, 4, 4)
    near = torch.zeros(1, 1, 4, 4)
    far[..., 0, 0], near[..., 3, 3] = 1.0, 1.0
    assert js_divergence(far, near).item() == pytest.approx(math.log(2), abs=1e-6)


def test_shape_and_argument_errors():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_heatmaps(_joints(1, 1), (8, 8), 0.0)
    with pytest.raises(ValueError, match="same shape"):
        js_divergence(torch.ones(1, 1, 4, 4) / 16, torch.ones(1, 1, 4, 5) / 20)
