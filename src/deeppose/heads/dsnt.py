"""Soft-argmax (integral) regression head: heatmap logits -> spatial softmax -> expected coordinates.

This is the parameter-free DSNT transform of Nibali et al. (SPEC §3): trained with a coordinate loss alone it is
the "soft_argmax" head; with DSNT's Jensen-Shannon or variance regularizer on the normalized maps (see
`DSNTHead.loss`) it is the "dsnt" head. Both are the same network. Coordinates are box-normalized as in Eq. 1: the
crop spans [-1/2, 1/2] in x and y, so cell j of n has centre (j + 1/2) / n - 1/2 — half the DSNT paper's X_{i,j}, whose
range is (-1, 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from deeppose.geometry import cell_centres
from deeppose.heads.base import HeadOutput
from deeppose.heads.losses import LOSSES
from deeppose.heads.maps import gaussian_heatmaps
from deeppose.heads.pyramid import PyramidHead

if TYPE_CHECKING:
    from deeppose.config import HeatmapLossConfig

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


def dsnt(heatmaps: torch.Tensor) -> torch.Tensor:
    """DSNT(Ĥ) = (<Ĥ, X>_F, <Ĥ, Y>_F), the expected position under each normalized map (SPEC §3).

    Args:
        heatmaps: (B, K, m, n), each map summing to 1.

    Returns:
        (B, K, 2) expected (x, y) in box-normalized units (Eq. 1), within (-1/2, 1/2).
    """
    m, n = heatmaps.shape[-2:]
    x = (heatmaps.sum(dim=-2) * cell_centres(n, device=heatmaps.device)).sum(dim=-1)
    y = (heatmaps.sum(dim=-1) * cell_centres(m, device=heatmaps.device)).sum(dim=-1)
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
    dx = cell_centres(n, device=heatmaps.device)[None, None, None, :] - joints[..., 0, None, None]
    dy = cell_centres(m, device=heatmaps.device)[None, None, :, None] - joints[..., 1, None, None]
    return (heatmaps * ((dx ** 2 + dy ** 2) <= r * r)).sum(dim=(-2, -1)).clamp(0.0, 1.0)


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Jensen-Shannon divergence D_JS(p || q) = (KL(p || m) + KL(q || m)) / 2, m = (p + q) / 2 (DSNT §3).

    Args:
        p, q: (..., m, n) maps that each sum to 1.

    Returns:
        (...) divergences in nats, in [0, ln 2].
    """
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    mid = 0.5 * (p + q)

    def kl(a: torch.Tensor) -> torch.Tensor:
        return (a * (torch.log(a + eps) - torch.log(mid + eps))).sum(dim=(-2, -1))

    return 0.5 * (kl(p) + kl(q))


def heatmap_variance(heatmaps: torch.Tensor) -> torch.Tensor:
    """Variance of each normalized map along x and y, in cells squared (DSNT's variance regularizer).

    Args:
        heatmaps: (B, K, m, n), each summing to 1.

    Returns:
        (B, K, 2) (Var_x, Var_y).
    """
    m, n = heatmaps.shape[-2:]
    cols = torch.arange(n, dtype=heatmaps.dtype, device=heatmaps.device)
    rows = torch.arange(m, dtype=heatmaps.dtype, device=heatmaps.device)
    px, py = heatmaps.sum(dim=-2), heatmaps.sum(dim=-1)
    mx, my = (px * cols).sum(-1, keepdim=True), (py * rows).sum(-1, keepdim=True)
    return torch.stack([(px * (cols - mx) ** 2).sum(-1), (py * (rows - my) ** 2).sum(-1)], dim=-1)


def dsnt_regularizer(logits: torch.Tensor, target: torch.Tensor, sigma: float, kind: str) -> torch.Tensor:
    """DSNT's heatmap regularizer per joint (Nibali et al. 2018, §4).

    Args:
        logits: (..., K, m, n) heatmap logits Z; target: (..., K, 2) box-normalized joints.
        sigma: sigma_t in cells; kind: "js" (D_JS(Ĥ || 𝒩(y, sigma_t^2 I))) or "variance" ((Var - sigma_t^2)^2
            summed over x and y, in cells^2).

    Returns:
        (..., K).
    """
    shape = logits.shape
    flat = logits.reshape(-1, 1, *shape[-2:])
    heatmaps = spatial_softmax(flat)
    if kind == "js":
        gauss = gaussian_heatmaps(target.reshape(-1, 1, 2), shape[-2:], sigma, normalize=True)
        return js_divergence(heatmaps, gauss).reshape(shape[:-2])
    if kind == "variance":
        return (heatmap_variance(heatmaps) - sigma ** 2).pow(2).sum(-1).reshape(shape[:-2])
    raise ValueError(f"unknown regularizer {kind!r}; known: js, variance")


class SoftArgmaxHead(PyramidHead):
    """A light top-down feature pyramid to the heatmap stride, K heatmap logits, spatial softmax, DSNT.

    See `PyramidHead` for the arguments.
    """

    @staticmethod
    def encode(target: torch.Tensor) -> torch.Tensor:
        """The codec's targets: Eq. 1's coordinates themselves, (..., K, 2) (the transform makes maps regress
        numbers)."""
        return target

    @staticmethod
    def decode(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The codec's read-out: logits Z (B, K, m, n) -> (DSNT(softmax(Z)) (B, K, 2) joints, the normalized maps)."""
        heatmaps = spatial_softmax(logits)
        return dsnt(heatmaps), heatmaps

    def output(self, features: list[torch.Tensor]) -> HeadOutput:
        """Backbone features (shallowest first) -> joints, confidence (`mass_near`) and the logits Z."""
        logits = self.heatmap_logits(features)
        joints, heatmaps = self.decode(logits)
        return HeadOutput(joints, mass_near(heatmaps, joints), logits=logits)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features (shallowest first) -> (B, K, 2) box-normalized joints."""
        return self.decode(self.heatmap_logits(features))[0]

    @staticmethod
    def loss(out: HeadOutput, target: torch.Tensor, loss: str, heatmap: HeatmapLossConfig) -> torch.Tensor:
        """(..., K): the coordinate loss on the DSNT output alone."""
        return LOSSES[loss](out.joints, SoftArgmaxHead.encode(target))


class DSNTHead(SoftArgmaxHead):
    """The DSNT head (Nibali et al. 2018): the soft-argmax network, trained with the coordinate loss plus
    lambda times a regularizer on its normalized maps (`dsnt_regularizer`: the Jensen-Shannon divergence to a
    Gaussian of sigma_t at the joint, or its variance towards sigma_t^2), `heatmap.weight` = lambda."""

    @staticmethod
    def loss(out: HeadOutput, target: torch.Tensor, loss: str, heatmap: HeatmapLossConfig) -> torch.Tensor:
        """(..., K): coordinate loss + lambda * regularizer (none when `heatmap.regularizer` is "" or lambda 0)."""
        value = SoftArgmaxHead.loss(out, target, loss, heatmap)
        if heatmap.regularizer and heatmap.weight > 0:
            value = value + heatmap.weight * dsnt_regularizer(out.logits, target, heatmap.sigma, heatmap.regularizer)
        return value
