"""Tompson et al. (2015)'s heatmap head and its position refinement (SPEC §2).

The coarse model regresses K heatmaps (Gaussian targets, MSE) at the pyramid's stride; a joint is the maximum
of its map, refined to sub-cell accuracy (`heatmaps.argmax_decode`). Position refinement crops the coarse
model's own feature maps — the shallow, high-resolution backbone level and the pyramid's map — in a window
around each joint's coarse maximum, and a small fully-convolutional network regresses a fine heatmap inside
the window, whose maximum moves the joint. Both are trained jointly (the window follows the coarse maximum,
without a gradient through it). All K windows of a batch are cut by one `grid_sample` call.
"""

from __future__ import annotations

import torch
from torch import nn

from deeppose.heads.base import HeadOutput
from deeppose.heads.maps import argmax_decode
from deeppose.heads.pyramid import PyramidHead, conv_bn_relu


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
    offsets = ((torch.arange(size, dtype=centres.dtype, device=centres.device) + 0.5) / size - 0.5) * side
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
        return maps[torch.arange(len(maps), device=maps.device), joint].view(b, num_joints, self.size, self.size)


class HeatmapHead(PyramidHead):
    """Tompson's heatmap regression on the shared pyramid, with optional position refinement.

    Args:
        in_channels, num_joints, width, dropout: see `PyramidHead` (dropout is Tompson's SpatialDropout).
        refine: add the position-refinement model.
        fine_channels: channels of the high-resolution backbone level the refinement also crops.
        window: refinement window side in heatmap cells; fine_size: its samples per side.
    """

    def __init__(self, in_channels: list[int], num_joints: int, width: int = 64, dropout: float = 0.0,
                 refine: bool = False, fine_channels: int = 0, window: float = 4.0, fine_size: int = 12) -> None:
        super().__init__(in_channels, num_joints, width, dropout)
        self.window = window
        self.refinement = PositionRefinement(width + fine_channels, num_joints, fine_size) if refine else None

    def output(self, features: list[torch.Tensor], fine_features: torch.Tensor | None = None) -> HeadOutput:
        """Backbone features (shallowest first) [and the high-resolution level for the refinement] -> joints,
        confidence (the coarse peak, clipped to [0, 1]) and the heatmaps.

        Returns:
            HeadOutput with logits (B, K, m, n) the coarse heatmaps, and with refinement `fine` (B, K, f, f)
            and `windows` (B, K, 4).
        """
        x = self.pyramid(features)
        maps = self.logits(self.dropout(x))
        coarse, peak = argmax_decode(maps.detach())
        confidence = peak.clamp(0.0, 1.0)
        if self.refinement is None:
            return HeadOutput(coarse, confidence, logits=maps)
        side = self.window / maps.shape[-1]
        levels = [x] if fine_features is None else [x, fine_features]
        crops = torch.cat([crop_windows(f, coarse, side, self.refinement.size) for f in levels], dim=1)
        fine = self.refinement(crops, self.num_joints)
        offset, _ = argmax_decode(fine.detach())
        joints = coarse + offset * side
        windows = torch.cat([coarse, torch.full_like(coarse, side)], dim=-1)
        return HeadOutput(joints, confidence, logits=maps, fine=fine, windows=windows)
