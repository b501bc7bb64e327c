"""Simulated predictions for training cascade stages (DeepPose Eq. 8).

The displacements y_i^(s-1) - y_i of stage s-1 on the training set are summarized per joint by a 2-D Normal;
stage s then trains on joint boxes centred at y_i + delta, delta drawn from that Normal, instead of only on
the few real predictions. Displacements are measured in units of the true pose diameter diam(y), so one
set of statistics serves people of any size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deeppose.geometry import diam
from deeppose.skeleton import Skeleton


@dataclass(frozen=True)
class DisplacementStats:
    """Per-joint 2-D Normal N_i^(s-1) of (y_i^(s-1) - y_i) / diam(y).

    Attributes:
        mean: (K, 2); cov: (K, 2, 2); count: (K,) displacements each joint's Normal was fitted on.
    """

    mean: np.ndarray
    cov: np.ndarray
    count: np.ndarray

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "cov": self.cov.tolist(), "count": self.count.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> DisplacementStats:
        return cls(np.asarray(d["mean"], np.float64), np.asarray(d["cov"], np.float64),
                   np.asarray(d["count"], np.int64))

    def format(self, joint_names: tuple[str, ...]) -> str:
        """A table of each joint's mean and standard deviations (units of diam(y))."""
        lines = [f"{'joint':<12}{'n':>7}{'mean x':>9}{'mean y':>9}{'std x':>8}{'std y':>8}{'corr':>7}"]
        for i, name in enumerate(joint_names):
            sx, sy = np.sqrt(np.diag(self.cov[i]))
            corr = self.cov[i, 0, 1] / max(sx * sy, 1e-12)
            lines.append(f"{name:<12}{self.count[i]:>7}{self.mean[i, 0]:>9.3f}{self.mean[i, 1]:>9.3f}"
                         f"{sx:>8.3f}{sy:>8.3f}{corr:>7.2f}")
        return "\n".join(lines)


def fit_displacements(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, skeleton: Skeleton,
                      quantile: float = 1.0) -> DisplacementStats:
    """DeepPose Eq. (8), the fit: mean and covariance of each joint's displacement (y_i^(s-1) - y_i) / diam(y).

    Args:
        pred: (N, K, 2) stage s-1 predictions; gt: (N, K, 2) true joints (same units); labelled: (N, K) bool.
        quantile: fit each joint's Normal on its displacements up to this quantile of their length only
            (1.0: all of them, the paper). Gross errors (a joint found on the wrong limb) make the errors
            heavy-tailed; a refinement stage cannot fix them from a sub-image around the wrong place, and
            they would widen the Normal far beyond the typical error it does fix.

    Returns:
        DisplacementStats over the labelled joints of images whose diam(y) is defined.

    Raises:
        ValueError: when a joint has fewer than 3 usable displacements.
    """
    d = diam(gt, labelled, skeleton)
    ok = labelled & np.isfinite(d)[:, None] & (np.nan_to_num(d) > 0)[:, None] & np.isfinite(pred).all(-1)
    disp = (pred - gt) / np.where(np.isfinite(d) & (d > 0), d, 1.0)[:, None, None]
    k = gt.shape[1]
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    mean, cov, count = np.zeros((k, 2)), np.zeros((k, 2, 2)), ok.sum(0)
    for i in range(k):
        if count[i] * quantile < 3:
            raise ValueError(f"joint {skeleton.joints[i]}: only {count[i]} displacements to fit a Normal on")
        di = disp[ok[:, i], i]
        if quantile < 1.0:
            length = np.linalg.norm(di, axis=-1)
            di = di[length <= np.quantile(length, quantile)]
            count[i] = len(di)
        mean[i] = di.mean(0)
        cov[i] = np.cov(di.T)
    return DisplacementStats(mean, cov, count.astype(np.int64))


def sample_displacements(stats: DisplacementStats, shape: tuple[int, ...], generator: torch.Generator | None = None
                         ) -> torch.Tensor:
    """DeepPose Eq. (8), the draw: delta ~ N_i^(s-1) for every joint.

    Args:
        shape: leading shape (e.g. (B, D)) of the draws.

    Returns:
        (*shape, K, 2) float32 displacements in units of diam(y).
    """
    mean = torch.as_tensor(stats.mean, dtype=torch.float64)
    cov = torch.as_tensor(stats.cov, dtype=torch.float64) + 1e-9 * torch.eye(2, dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)  # (K, 2, 2)
    z = torch.randn(*shape, len(mean), 2, generator=generator, dtype=torch.float64)
    return (mean + (chol @ z[..., None])[..., 0]).float()


def simulated_boxes(y: torch.Tensor, diameter: torch.Tensor, stats: DisplacementStats, sigma: float, draws: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """DeepPose Eq. (8): boxes b = (y_i + delta, sigma diam(y), sigma diam(y)), delta ~ N_i^(s-1).

    Args:
        y: (B, K, 2) true joints; diameter: (B,) diam(y) (same units).
        draws: D boxes per joint per image.

    Returns:
        (B, D, K, 4) boxes (c_x, c_y, w, h).
    """
    b, k = y.shape[:2]
    delta = sample_displacements(stats, (b, draws), generator).to(y.device)
    d = diameter[:, None, None, None]
    centre = y[:, None] + delta * d
    side = (sigma * d).expand(b, draws, k, 1)
    return torch.cat([centre, side, side], dim=-1)
