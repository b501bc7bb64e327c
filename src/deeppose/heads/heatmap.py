"""Tompson et al. (2015)'s heatmap head and its position refinement (SPEC §2).

The coarse model regresses K heatmaps (Gaussian targets, MSE) at the pyramid's stride; a joint is the maximum
of its map, refined to sub-cell accuracy (`argmax_decode`). Position refinement crops the coarse
model's own feature maps — the shallow, high-resolution backbone level and the pyramid's map — in a window
around each joint's coarse maximum, and a small fully-convolutional network regresses a fine heatmap inside
the window, whose maximum moves the joint. Both are trained jointly (the window follows the coarse maximum,
without a gradient through it). All K windows of a batch are cut by one `grid_sample` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from deeppose.errors import DeepPoseError
from deeppose.geometry import cell_centres, crop_pixel_to_normalized, normalize, own_joint
from deeppose.heads.base import HeadOutput
from deeppose.heads.maps import gaussian_heatmaps
from deeppose.heads.pyramid import PyramidHead, conv_bn_relu

if TYPE_CHECKING:
    from deeppose.config import HeatmapLossConfig, ModelConfig


def argmax_decode(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tompson-style decoding: the maximum cell of each map, refined to sub-cell accuracy by a parabola
    through the maximum and its two neighbours along each axis (through their logarithms where all three are
    positive, which is exact for a Gaussian peak).

    Args:
        heatmaps: (B, K, m, n) (any scale; logits or probabilities).

    Returns:
        (B, K, 2) box-normalized (x, y); (B, K) the peak value (a per-joint confidence).
    """
    b, k, m, n = heatmaps.shape
    flat = heatmaps.float().reshape(b, k, m * n)
    peak, idx = flat.max(dim=-1)
    row, col = idx // n, idx % n

    def offset(centre: torch.Tensor, axis_len: int, lo_idx: torch.Tensor, hi_idx: torch.Tensor) -> torch.Tensor:
        lo, hi, top = flat.gather(-1, lo_idx[..., None])[..., 0], flat.gather(-1, hi_idx[..., None])[..., 0], peak
        positive = (lo > 0) & (hi > 0) & (top > 0)
        lo, hi, top = (torch.where(positive, torch.log(v.clamp_min(1e-30)), v) for v in (lo, hi, top))
        curvature = lo - 2 * top + hi
        step = torch.where(curvature < 0, 0.5 * (lo - hi) / curvature.clamp(max=-1e-12), torch.zeros_like(peak))
        inside = (centre > 0) & (centre < axis_len - 1)
        return torch.where(inside, step.clamp(-0.5, 0.5), torch.zeros_like(step))

    left, right = row * n + (col - 1).clamp(min=0), row * n + (col + 1).clamp(max=n - 1)
    up, down = (row - 1).clamp(min=0) * n + col, (row + 1).clamp(max=m - 1) * n + col
    u = torch.stack([col + offset(col, n, left, right), row + offset(row, m, up, down)], dim=-1)
    return crop_pixel_to_normalized(u, (n, m)), peak


def heatmap_mse(maps: torch.Tensor, target: torch.Tensor, sigma: float) -> torch.Tensor:
    """Tompson's loss per joint: sum over cells of (H - G)^2, G a Gaussian of `sigma` cells and peak 1 at the joint.

    Args:
        maps: (..., K, m, n) regressed heatmaps; target: (..., K, 2) box-normalized joints.

    Returns:
        (..., K).
    """
    return (maps.float() - HeatmapHead.encode(target, maps.shape, sigma)).pow(2).sum(dim=(-2, -1))


def window_target(target: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """A joint's place in its refinement window (Eq. 1 in the window: [-1/2, 1/2] inside it).

    Args:
        target: (..., K, 2) box-normalized joints; windows: (..., K, 4) (c_x, c_y, w, h).
    """
    return normalize(target, windows)


def window_grid(centres: torch.Tensor, side: float, size: int) -> torch.Tensor:
    """Sampling grid of the K windows of each image, stacked along the rows, for `grid_sample`.

    Args:
        centres: (B, K, 2) window centres, box-normalized (the crop spans [-1/2, 1/2]).
        side: window side in box units; size: f, samples per side (sample centres, as in `to_cells`).

    Returns:
        (B, K * f, f, 2) grid in grid_sample's [-1, 1] frame (align_corners=False): rows k*f..(k+1)*f-1 sample
        window k.
    """
    b, k = centres.shape[:2]
    offsets = cell_centres(size, centres.dtype, centres.device) * side
    gx = centres[..., 0, None, None] + offsets[None, None, None, :]  # (B, K, 1, f)
    gy = centres[..., 1, None, None] + offsets[None, None, :, None]  # (B, K, f, 1)
    grid = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)  # (B, K, f, f, 2)
    return (2 * grid).reshape(b, k * size, size, 2)


def crop_windows(features: torch.Tensor, centres: torch.Tensor, side: float, size: int) -> torch.Tensor:
    """Bilinear crops of a feature map around every joint, one batched `grid_sample`.

    Args:
        features: (B, C, H, W) over the whole input crop; centres: (B, K, 2) box-normalized.

    Returns:
        (B * K, C, f, f), image-major.
    """
    b, c = features.shape[:2]
    k = centres.shape[1]
    out = nn.functional.grid_sample(features, window_grid(centres.to(features.dtype), side, size),
                                    mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(b, c, k, size, size).transpose(1, 2).reshape(b * k, c, size, size)


class PositionRefinement(nn.Module):
    """Tompson's fine model: a fine heatmap per joint in a window around its coarse position.

    Args:
        in_channels: channels of the cropped feature maps (concatenated).
        num_joints: K; the window of joint i reads output map i (one network for all joints).
        size: f, samples per window side.
        width: channels of the fine network.
    """

    def __init__(self, in_channels: int, num_joints: int, size: int = 12, width: int = 32) -> None:
        super().__init__()
        self.size = size
        self.net = nn.Sequential(conv_bn_relu(in_channels, width, 3), conv_bn_relu(width, width, 3),
                                 nn.Conv2d(width, num_joints, 1))

    def forward(self, crops: torch.Tensor, num_joints: int) -> torch.Tensor:
        """(B * K, C, f, f) windows, image-major -> (B, K, f, f) fine heatmaps (window i reads map i)."""
        maps = self.net(crops)  # (B * K, K, f, f)
        b = len(maps) // num_joints
        joint = torch.arange(num_joints, device=maps.device).repeat(b)
        return own_joint(maps, joint).view(b, num_joints, self.size, self.size)


class HeatmapHead(PyramidHead):
    """Tompson's heatmap regression on the shared pyramid, with optional position refinement.

    Codec: the target of each map is a Gaussian of `heatmap.sigma` cells and peak 1 at the joint
    (`maps.gaussian_heatmaps`); a map decodes to its sub-cell maximum (`argmax_decode`), whose value, clipped to
    [0, 1], is the confidence. Loss: the maps' MSE, plus the fine maps' MSE in their windows with refinement.

    Args:
        in_channels, num_joints, width, dropout, strides: see `PyramidHead` (dropout is Tompson's SpatialDropout).
        refine: add the position-refinement model.
        fine_channels: channels of the high-resolution backbone level the refinement also crops (0: none).
        window: refinement window side in heatmap cells; fine_size: its samples per side.
    """

    def __init__(self, in_channels: list[int], num_joints: int, width: int = 64, dropout: float = 0.0,
                 strides: tuple[int, ...] | None = None, refine: bool = False, fine_channels: int = 0,
                 window: float = 4.0, fine_size: int = 12) -> None:
        super().__init__(in_channels, num_joints, width, dropout, strides)
        self.window = window
        # the position refinement also crops the stride-4 level when the heatmaps are coarser
        self.fine_stride = 4 if fine_channels else 0
        self.refinement = PositionRefinement(width + fine_channels, num_joints, fine_size) if refine else None

    @classmethod
    def build(cls, backbone: nn.Module, num_joints: int, input_size: int, m: ModelConfig) -> HeatmapHead:
        """The heatmap head on the levels from `m.stride` to `m.top_stride`; with `m.refine`, the position
        refinement, which also crops the stride-4 level when the heatmaps are coarser."""
        strides = cls.levels(backbone, m)
        fine = backbone.feature_channels(4) if m.refine and m.stride > 4 else 0
        return cls([backbone.feature_channels(s) for s in strides], num_joints, m.reduce, m.dropout, strides,
                    m.refine, fine)

    @staticmethod
    def encode(target: torch.Tensor, shape: torch.Size, sigma: float) -> torch.Tensor:
        """The codec's targets: (..., K, 2) box-normalized joints -> (..., K, m, n) Gaussians of `sigma` cells,
        peak 1 at each joint, on the cells of maps of `shape` (..., K, m, n)."""
        return gaussian_heatmaps(target.reshape(-1, 1, 2), shape[-2:], sigma).reshape(shape)

    @staticmethod
    def decode(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The codec's read-out: maps (B, K, m, n) -> ((B, K, 2) sub-cell maxima, (B, K) peak values)."""
        return argmax_decode(maps)

    def features(self, backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid's levels, shallowest first, after the stride-4 level when the refinement crops it."""
        return backbone.forward_pyramid(x, (self.fine_stride, *self.strides) if self.fine_stride else self.strides)

    def output(self, features: list[torch.Tensor]) -> HeadOutput:
        """Backbone features (`features`) -> joints, confidence (the coarse peak, clipped to [0, 1]) and the maps.

        Returns:
            HeadOutput with logits (B, K, m, n) the coarse heatmaps, and with refinement `fine` (B, K, f, f)
            and `windows` (B, K, 4).
        """
        fine_features, levels = (features[0], features[1:]) if self.fine_stride else (None, features)
        x = self.pyramid(levels)
        maps = self.logits(self.dropout(x))
        coarse, peak = self.decode(maps.detach())
        confidence = peak.clamp(0.0, 1.0)
        if self.refinement is None:
            return HeadOutput(coarse, confidence, logits=maps)
        side = self.window / maps.shape[-1]
        crop_from = [x] if fine_features is None else [x, fine_features]
        crops = torch.cat([crop_windows(f, coarse, side, self.refinement.size) for f in crop_from], dim=1)
        fine = self.refinement(crops, self.num_joints)
        offset, _ = self.decode(fine.detach())
        joints = coarse + offset * side
        windows = torch.cat([coarse, torch.full_like(coarse, side)], dim=-1)
        return HeadOutput(joints, confidence, logits=maps, fine=fine, windows=windows)

    @classmethod
    def check_loss(cls, loss: str, head: str, key: str) -> None:
        if loss != "mse":
            raise DeepPoseError(None, f"config {key}: the heatmap head trains with loss 'mse' (Tompson), not {loss!r}")

    @staticmethod
    def loss(out: HeadOutput, target: torch.Tensor, loss: str, heatmap: HeatmapLossConfig) -> torch.Tensor:
        """(..., K): the maps' MSE to their Gaussian targets, plus the fine maps' in their windows."""
        value = heatmap_mse(out.logits, target, heatmap.sigma)
        if out.fine is not None:
            value = value + heatmap_mse(out.fine, window_target(target, out.windows), heatmap.fine_sigma)
        return value
