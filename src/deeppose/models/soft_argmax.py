"""Soft-argmax (integral) regression head: heatmap logits -> spatial softmax -> expected coordinates.

This is the parameter-free DSNT transform of Nibali et al. (SPEC §3) used as a stage-1 output layer, trained with
the same coordinate loss as the fully-connected head (Eq. 4 or L1); the JS-divergence regularizer and the other
heatmap heads belong to the head comparison. Coordinates are box-normalized as in Eq. 1: the crop spans
[-1/2, 1/2] in x and y, so cell j of n has centre (j + 1/2) / n - 1/2 — half the DSNT paper's X_{i,j}, whose
range is (-1, 1).
"""

from __future__ import annotations

import torch
from torch import nn


def spatial_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Ĥ = softmax over all m·n cells of each map (SPEC §3).

    Args:
        logits: (B, K, m, n) unnormalized heatmaps Z.

    Returns:
        (B, K, m, n) non-negative maps that sum to 1 over (m, n).
    """
    b, k, m, n = logits.shape
    return torch.softmax(logits.float().reshape(b, k, m * n), dim=-1).reshape(b, k, m, n)


def coordinate_vector(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Box-normalized centres of n cells along one axis: (j + 1/2) / n - 1/2 for j = 0..n-1, shape (n,)."""
    return (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n - 0.5


def dsnt(heatmaps: torch.Tensor) -> torch.Tensor:
    """DSNT(Ĥ) = (<Ĥ, X>_F, <Ĥ, Y>_F), the expected position under each normalized map (SPEC §3).

    Args:
        heatmaps: (B, K, m, n), each map summing to 1.

    Returns:
        (B, K, 2) expected (x, y) in box-normalized units (Eq. 1), within (-1/2, 1/2).
    """
    m, n = heatmaps.shape[-2:]
    x = (heatmaps.sum(dim=-2) * coordinate_vector(n, heatmaps.device)).sum(dim=-1)
    y = (heatmaps.sum(dim=-1) * coordinate_vector(m, heatmaps.device)).sum(dim=-1)
    return torch.stack([x, y], dim=-1)


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SoftArgmaxHead(nn.Module):
    """A light top-down feature pyramid to the heatmap stride, K heatmap logits, spatial softmax, DSNT.

    The deepest backbone level carries the context a joint needs; the shallower ones its precise place. Each
    level is projected to `width` channels (1x1 conv), upsampled and added from the deepest down to the
    heatmap stride, smoothed by one depthwise-separable 3x3 convolution and read out as K maps.

    Args:
        in_channels: channels of the backbone features at each level, shallowest (the heatmap stride) first.
        num_joints: K.
        width: channels of the pyramid.
        dropout: spatial (channel) dropout before the read-out (Tompson's SpatialDropout).
    """

    def __init__(self, in_channels: list[int], num_joints: int, width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.lateral = nn.ModuleList(_conv_bn_relu(c, width) for c in in_channels)
        self.smooth = nn.Sequential(_conv_bn_relu(width, width, 3, groups=width), _conv_bn_relu(width, width))
        self.dropout = nn.Dropout2d(dropout)
        self.logits = nn.Conv2d(width, num_joints, 1)

    def heatmap_logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features [(B, C_l, H_l, W_l)], shallowest first -> (B, K, H_0, W_0) logits Z."""
        x = self.lateral[-1](features[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            x = lateral(f) + nn.functional.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.logits(self.dropout(self.smooth(x)))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features (shallowest first) -> (B, K, 2) box-normalized joints."""
        return dsnt(spatial_softmax(self.heatmap_logits(features)))
