"""Training objectives of the heads: what each head's loss is, per joint, from its `HeadOutput`.

- fc: a coordinate loss (DeepPose Eq. 4: L2; or L1, smooth-L1, Euclidean) plus the learned score's binary
  cross-entropy (the score learns whether the joint lands within SCORE_RADIUS).
- soft_argmax: the coordinate loss on the DSNT output alone.
- dsnt (Nibali et al. 2018): the coordinate loss (their Euclidean) + lambda * a regularizer on the normalized
  maps: the Jensen-Shannon divergence to a Gaussian of sigma_t, or their variance towards sigma_t^2.
- heatmap (Tompson et al. 2015): MSE between the regressed maps and Gaussians at the joints (peak 1); with
  position refinement, plus the MSE of each fine map to a Gaussian at the joint's place in its window.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deeppose.config import HeatmapLossConfig
from deeppose.errors import DeepPoseError
from deeppose.heads.base import HeadOutput
from deeppose.heads.dsnt import spatial_softmax
from deeppose.heads.losses import LOSSES
from deeppose.heads.maps import gaussian_heatmaps, heatmap_variance, js_divergence

# Distance (box units) within which the fully-connected head's score counts a joint as right; about PCK@0.2
# of LSP's median torso (0.27 of the box).
SCORE_RADIUS = 0.05
REGULARIZERS = ("js", "variance", "")


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


def heatmap_mse(maps: torch.Tensor, target: torch.Tensor, sigma: float) -> torch.Tensor:
    """Tompson's loss per joint: sum over cells of (H - G)^2, G a Gaussian of `sigma` cells and peak 1 at the joint.

    Args:
        maps: (..., K, m, n) regressed heatmaps; target: (..., K, 2) box-normalized joints.

    Returns:
        (..., K).
    """
    shape = maps.shape
    gauss = gaussian_heatmaps(target.reshape(-1, 1, 2), shape[-2:], sigma).reshape(shape)
    return (maps.float() - gauss).pow(2).sum(dim=(-2, -1))


def window_target(target: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """A joint's place in its refinement window, normalized to the window ([-1/2, 1/2] inside it).

    Args:
        target: (..., K, 2) box-normalized joints; windows: (..., K, 4) (c_x, c_y, w, h).
    """
    return (target - windows[..., 0:2]) / windows[..., 2:4]


def score_bce(score_logits: torch.Tensor, joints: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The learned score's binary cross-entropy per joint, its label whether the joint is within SCORE_RADIUS.

    Args:
        score_logits: (..., K); joints, target: (..., K, 2) box-normalized (joints carry no gradient here).
    """
    label = ((joints.detach() - target).norm(dim=-1) < SCORE_RADIUS).to(score_logits.dtype)
    return torch.nn.functional.binary_cross_entropy_with_logits(score_logits, label, reduction="none")


class Objective:
    """The per-joint training loss of one head.

    Args:
        head: the model's head ("fc", "soft_argmax", "dsnt", "heatmap").
        loss: the coordinate loss (see losses.LOSSES), or "mse" for the heatmap head.
        heatmap: the heatmap heads' targets and regularizer.
        key: the config key of `loss`, for error messages.
    """

    def __init__(self, head: str, loss: str, heatmap: HeatmapLossConfig, key: str = "loss") -> None:
        if head == "heatmap" and loss != "mse":
            raise DeepPoseError(None, f"config {key}: the heatmap head trains with loss 'mse' (Tompson), not {loss!r}")
        if head != "heatmap" and loss not in LOSSES:
            raise DeepPoseError(None, f"config {key}: unknown loss {loss!r} for head {head!r} ({', '.join(LOSSES)}; "
                                      f"'mse' is the heatmap head's)")
        if heatmap.regularizer not in REGULARIZERS:
            raise DeepPoseError(None, f"config heatmap.regularizer: {heatmap.regularizer!r} is not js, variance or ''")
        if heatmap.sigma <= 0 or heatmap.fine_sigma <= 0 or heatmap.weight < 0:
            raise DeepPoseError(None, "config heatmap: sigma and fine_sigma must be positive, weight non-negative")
        self.head = head
        self.coordinate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = LOSSES.get(loss)
        self.heatmap = heatmap

    def __call__(self, out: HeadOutput, target: torch.Tensor) -> torch.Tensor:
        """(..., K) per-joint losses of a HeadOutput against the (..., K, 2) box-normalized true joints."""
        h = self.heatmap
        if self.head == "heatmap":
            loss = heatmap_mse(out.logits, target, h.sigma)
            if out.fine is not None:
                loss = loss + heatmap_mse(out.fine, window_target(target, out.windows), h.fine_sigma)
            return loss
        loss = self.coordinate(out.joints, target)
        if self.head == "dsnt" and h.regularizer and h.weight > 0:
            loss = loss + h.weight * dsnt_regularizer(out.logits, target, h.sigma, h.regularizer)
        if out.score_logits is not None:
            loss = loss + score_bce(out.score_logits, out.joints, target)
        return loss
