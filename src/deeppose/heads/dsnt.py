"""Soft-argmax (integral) regression head: heatmap logits -> spatial softmax -> expected coordinates.

This is the parameter-free DSNT transform of Nibali et al. (SPEC §3): trained with a coordinate loss alone it is
the "soft_argmax" head; with DSNT's Jensen-Shannon or variance regularizer on the normalized maps (see
`objectives`) it is the "dsnt" head. Both are the same network. Coordinates are box-normalized as in Eq. 1: the
crop spans [-1/2, 1/2] in x and y, so cell j of n has centre (j + 1/2) / n - 1/2 — half the DSNT paper's X_{i,j}, whose
range is (-1, 1).
"""

from __future__ import annotations

import torch

from deeppose.heads.base import HeadOutput
from deeppose.heads.pyramid import PyramidHead

# Radius (box units, at least one heatmap cell) within which a DSNT map's mass counts as its confidence: about
# PCK@0.2 of LSP's median torso (0.27 of the box).
CONFIDENCE_RADIUS = 0.05


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


def mass_near(heatmaps: torch.Tensor, joints: torch.Tensor, radius: float = CONFIDENCE_RADIUS) -> torch.Tensor:
    """The probability mass of each normalized map within `radius` (box units, at least one cell) of `joints`:
    DSNT's per-joint confidence, high for a tight map around its expected position.

    Args:
        heatmaps: (B, K, m, n), each summing to 1; joints: (B, K, 2) box-normalized.

    Returns:
        (B, K) in [0, 1].
    """
    m, n = heatmaps.shape[-2:]
    r = max(radius, 1.0 / min(m, n))
    dx = coordinate_vector(n, heatmaps.device)[None, None, None, :] - joints[..., 0, None, None]
    dy = coordinate_vector(m, heatmaps.device)[None, None, :, None] - joints[..., 1, None, None]
    return (heatmaps * ((dx ** 2 + dy ** 2) <= r * r)).sum(dim=(-2, -1)).clamp(0.0, 1.0)


class SoftArgmaxHead(PyramidHead):
    """A light top-down feature pyramid to the heatmap stride, K heatmap logits, spatial softmax, DSNT.

    See `PyramidHead` for the arguments.
    """

    def output(self, features: list[torch.Tensor]) -> HeadOutput:
        """Backbone features (shallowest first) -> joints, confidence (`mass_near`) and the logits Z."""
        logits = self.heatmap_logits(features)
        heatmaps = spatial_softmax(logits)
        joints = dsnt(heatmaps)
        return HeadOutput(joints, mass_near(heatmaps, joints), logits=logits)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features (shallowest first) -> (B, K, 2) box-normalized joints."""
        return dsnt(spatial_softmax(self.heatmap_logits(features)))
