"""Gaussian heatmap targets, shared by Tompson's heatmap head (its MSE target) and DSNT's regularizer.

Frame: a heatmap of m x n cells spans the crop, whose box-normalized coordinates (Eq. 1) run over [-1/2, 1/2];
cell (i, j) has centre ((j + 1/2) / n - 1/2, (i + 1/2) / m - 1/2) (`geometry.crop_pixel_to_normalized`). Widths
(sigma) are in cells of the heatmap.
"""

from __future__ import annotations

import torch

from deeppose.geometry import normalized_to_crop_pixel


def gaussian_heatmaps(y: torch.Tensor, shape: tuple[int, int], sigma: float, normalize: bool = False) -> torch.Tensor:
    """Gaussian 𝒩(y, sigma^2 I) sampled at the cell centres: Tompson's MSE target, DSNT's JS target.

    Args:
        y: (B, K, 2) box-normalized joints.
        shape: (m, n) heatmap rows and columns.
        sigma: standard deviation in cells.
        normalize: True: each map sums to 1 (a distribution, for DSNT); False: peak value 1 at the joint
            (Tompson's target).

    Returns:
        (B, K, m, n) float maps.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    m, n = shape
    u = normalized_to_crop_pixel(y.float(), (n, m))
    cols = torch.arange(n, dtype=torch.float32, device=y.device)
    rows = torch.arange(m, dtype=torch.float32, device=y.device)
    gx = torch.exp(-0.5 * ((cols - u[..., 0:1]) / sigma) ** 2)  # (B, K, n)
    gy = torch.exp(-0.5 * ((rows - u[..., 1:2]) / sigma) ** 2)  # (B, K, m)
    maps = gy[..., :, None] * gx[..., None, :]
    if normalize:
        maps = maps / maps.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return maps
