"""Regression losses. Each returns per-joint values (B, K); masking and reduction are separate (`masked_mean`)."""

from __future__ import annotations

import torch

from deeppose.errors import DeepPoseError


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.shape[-1] != 2:
        raise ValueError(f"pred and target must both be (B, K, 2), got {tuple(pred.shape)} and {tuple(target.shape)}")


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DeepPose (Toshev & Szegedy 2014) Eq. (4) summand: ||y_i - psi_i(x; theta)||_2^2.

    Args:
        pred, target: (B, K, 2) box-normalized coordinates.

    Returns:
        (B, K) squared Euclidean errors.
    """
    _check(pred, target)
    return (pred - target).pow(2).sum(dim=-1)


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 variant of Eq. (4): |dx| + |dy| per joint; (B, K, 2) -> (B, K)."""
    _check(pred, target)
    return (pred - target).abs().sum(dim=-1)


def smooth_l1_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = 0.01) -> torch.Tensor:
    """Smooth-L1 (Huber) variant of Eq. (4), summed over x and y: quadratic below `beta` (box units), linear above.

    Args:
        pred, target: (B, K, 2) box-normalized coordinates.

    Returns:
        (B, K) per-joint losses.
    """
    _check(pred, target)
    return torch.nn.functional.smooth_l1_loss(pred, target, reduction="none", beta=beta).sum(dim=-1)


def euclidean_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """DSNT's Euclidean loss ||y - psi(x)||_2 (not squared) per joint; (B, K, 2) -> (B, K)."""
    _check(pred, target)
    return ((pred - target).pow(2).sum(dim=-1) + eps).sqrt()


LOSSES = {"l2": l2_loss, "l1": l1_loss, "smooth_l1": smooth_l1_loss, "euclidean": euclidean_loss}


def masked_mean(losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-joint losses (B, K) over joints where mask (B, K) is True (Eq. 4 omits unlabelled joints).

    Returns 0 (with a gradient path) when nothing is masked in.
    """
    if losses.shape != mask.shape:
        raise ValueError(f"losses and mask must have the same shape, got {tuple(losses.shape)} and {tuple(mask.shape)}")
    m = mask.to(losses.dtype)
    return (losses * m).sum() / m.sum().clamp_min(1.0)


def check_coordinate_loss(loss: str, head: str, key: str) -> None:
    """Refuse a coordinate loss that is not one of LOSSES (DeepPoseError naming the config key)."""
    if loss not in LOSSES:
        raise DeepPoseError(None, f"config {key}: unknown loss {loss!r} for head {head!r} ({', '.join(LOSSES)}; "
                                  f"'mse' is the heatmap head's)")
