"""Heatmap targets, decoding and divergences shared by Tompson's heatmap head and DSNT's regularizer.

Frame: a heatmap of m x n cells spans the crop, whose box-normalized coordinates (Eq. 1) run over [-1/2, 1/2];
cell (i, j) has centre ((j + 1/2) / n - 1/2, (i + 1/2) / m - 1/2), as in `soft_argmax.coordinate_vector`.
Widths (sigma) are in cells of the heatmap.
"""

from __future__ import annotations

import torch


def to_cells(y: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(..., 2) box-normalized (x, y) -> (..., 2) continuous cell coordinates (column, row); cell centres are
    integers."""
    m, n = shape
    size = torch.tensor([n, m], dtype=y.dtype, device=y.device)
    return (y + 0.5) * size - 0.5


def from_cells(u: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Inverse of `to_cells`: (..., 2) cell coordinates (column, row) -> box-normalized (x, y)."""
    m, n = shape
    size = torch.tensor([n, m], dtype=u.dtype, device=u.device)
    return (u + 0.5) / size - 0.5


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
    u = to_cells(y.float(), shape)
    cols = torch.arange(n, dtype=torch.float32, device=y.device)
    rows = torch.arange(m, dtype=torch.float32, device=y.device)
    gx = torch.exp(-0.5 * ((cols - u[..., 0:1]) / sigma) ** 2)  # (B, K, n)
    gy = torch.exp(-0.5 * ((rows - u[..., 1:2]) / sigma) ** 2)  # (B, K, m)
    maps = gy[..., :, None] * gx[..., None, :]
    if normalize:
        maps = maps / maps.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return maps


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
    return from_cells(u, (m, n)), peak
