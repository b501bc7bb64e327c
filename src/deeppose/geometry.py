"""Pure geometry: box normalization (DeepPose Eq. 1), crops as one affine warp, torso diameter, joint boxes (Eq. 7).

Convention (used everywhere in deeppose):
    * Points are (x, y) in pixels with pixel centres at integer coordinates (OpenCV's convention): pixel i
      covers [i - 0.5, i + 0.5], an image of width W spans [-0.5, W - 0.5].
    * A box b = (c_x, c_y, w, h) is stored as an array (..., 4).
    * Box-normalized coordinates N(y; b) = (y - b_c) / (b_w, b_h) lie in [-0.5, 0.5] inside the box.
    * A crop of box b at output size (W_out, H_out) maps the box edges onto the crop's pixel-grid edges,
      so crop pixel q and normalized coordinate u satisfy q = (u + 0.5) * W_out - 0.5. This is also
      `grid_sample`'s `align_corners=False` convention (grid coordinate = 2u).

Every function here accepts NumPy arrays or torch tensors (same type in, same type out) unless its name
says otherwise; leading dimensions broadcast.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deeppose.skeleton import Skeleton

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _stack(xs: list[Any], axis: int) -> Any:
    if isinstance(xs[0], torch.Tensor):
        return torch.stack(xs, dim=axis)
    return np.stack(xs, axis=axis)


def _check_last(x: Any, size: int, what: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{what}: expected last dimension {size}, got shape {tuple(x.shape)}")


def normalize(y: Array, b: Array) -> Array:
    """DeepPose (Toshev & Szegedy 2014) Eq. (1): N(y; b) = diag(1/b_w, 1/b_h) (y - b_c).

    The one place Eq. 1 is written: a pose in its person box, a joint in its joint box (Eq. 6's refinement
    target), a joint in its refinement window (Tompson).

    Args:
        y: (..., K, 2) points, (x, y), in the units of b.
        b: (..., 4) one box (c_x, c_y, w, h) per pose, or (..., K, 4) one box per point (b has y's number of
            dimensions); leading dimensions broadcast.

    Returns:
        (..., K, 2) box-normalized coordinates, in [-0.5, 0.5] inside the box.
    """
    _check_last(y, 2, "joints")
    _check_last(b, 4, "box")
    if b.ndim == y.ndim - 1:
        b = b[..., None, :]
    return (y - b[..., 0:2]) / b[..., 2:4]


def denormalize(u: Array, b: Array) -> Array:
    """DeepPose Eq. (1) inverted: N^{-1}(u; b) = diag(b_w, b_h) u + b_c.

    Args:
        u: (..., K, 2) box-normalized coordinates.
        b: (..., 4) boxes (c_x, c_y, w, h).

    Returns:
        (..., K, 2) image pixels.
    """
    _check_last(u, 2, "normalized joints")
    _check_last(b, 4, "box")
    return u * b[..., None, 2:4] + b[..., None, 0:2]


def whole_image_box(width: float, height: float) -> np.ndarray:
    """The box covering a whole image of width x height pixels: (4,) float64, b^0 of DeepPose on LSP."""
    return np.array([(width - 1) / 2.0, (height - 1) / 2.0, float(width), float(height)])


def corner_box(b: np.ndarray) -> list[float]:
    """The box converter, centre -> corner: (c_x, c_y, w, h) with pixel centres at integers -> [x, y, w, h] from
    the top-left corner of the top-left pixel (the command line's --box and the JSON's "box")."""
    return [float(b[0] - b[2] / 2 + 0.5), float(b[1] - b[3] / 2 + 0.5), float(b[2]), float(b[3])]


def centre_box(x: float, y: float, w: float, h: float) -> np.ndarray:
    """The box converter, corner -> centre: inverse of `corner_box`; (4,) float64 (c_x, c_y, w, h)."""
    return np.array([x + w / 2 - 0.5, y + h / 2 - 0.5, w, h], dtype=np.float64)


def joints_box(y: np.ndarray, labelled: np.ndarray, scale: float = 1.33) -> np.ndarray:
    """A square box around the labelled joints: centred on their extent, side = scale * the longer extent.

    Frames a person the way LSP's images do (their side is about 1.33 times the pose extent) where a
    dataset has no person box and its images are wider than the person (LSPET).

    Args:
        y: (K, 2) joints in pixels; labelled: (K,) bool (at least one True).

    Returns:
        (4,) float64 box (c_x, c_y, side, side).
    """
    pts = np.asarray(y, np.float64)[np.asarray(labelled, bool)]
    if len(pts) == 0:
        raise ValueError("joints_box needs at least one labelled joint")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = max(float((hi - lo).max()) * scale, 1.0)
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, side, side])


def square_box(b: Array) -> Array:
    """Enlarge boxes (..., 4) to squares of side max(w, h), same centre (keeps the aspect ratio when cropped)."""
    side = b[..., 2:3].maximum(b[..., 3:4]) if isinstance(b, torch.Tensor) else np.maximum(b[..., 2:3], b[..., 3:4])
    return _stack([b[..., 0], b[..., 1], side[..., 0], side[..., 0]], -1)


def _grid_scale(like: Any, size: int | tuple[int, int]) -> Any:
    if isinstance(size, int):
        return size
    w, h = size
    return like.new_tensor([w, h]) if isinstance(like, torch.Tensor) else np.array([w, h], dtype=like.dtype)


def crop_pixel_to_normalized(q: Array, size: int | tuple[int, int]) -> Array:
    """The pixel/cell -> normalized converter, u = (q + 1/2) / n - 1/2: pixels of a crop, or cells of a heatmap,
    whose n samples span the box, to box-normalized coordinates in [-0.5, 0.5].

    Args:
        q: (..., 2) (x, y) pixel or cell coordinates (integers at sample centres) with size (W, H), or any
            shape with one size n for all.
        size: (W, H) (a heatmap of m rows and n columns: (n, m)), or n.
    """
    return (q + 0.5) / _grid_scale(q, size) - 0.5


def normalized_to_crop_pixel(u: Array, size: int | tuple[int, int]) -> Array:
    """The normalized -> pixel/cell converter, q = (u + 1/2) n - 1/2; inverse of `crop_pixel_to_normalized`
    (same arguments)."""
    return (u + 0.5) * _grid_scale(u, size) - 0.5


def cell_centres(n: int, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> torch.Tensor:
    """Box-normalized centres of n cells (or samples) along one axis, (j + 1/2) / n - 1/2 for j = 0..n-1: (n,)."""
    return crop_pixel_to_normalized(torch.arange(n, dtype=dtype, device=device), n)


def own_joint(x: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
    """The own-joint read-out: of the K outputs computed for crop n, the one of the joint it was cut for
    (DeepPose's refinement stages and Tompson's position refinement run one network for all joints).

    Args:
        x: (N, K, ...) outputs per crop; joint: (N,) long.

    Returns:
        (N, ...): x[n, joint[n]].
    """
    return x[torch.arange(len(x), device=x.device), joint]


def crop_matrix(b: Array, out_size: tuple[int, int]) -> Array:
    """The affine map of the crop N(x; b): image pixels -> crop pixels of a (W_out, H_out) crop.

    Args:
        b: (..., 4) boxes (c_x, c_y, w, h).
        out_size: (W_out, H_out).

    Returns:
        (..., 2, 3) matrices A with q = A [p; 1].
    """
    _check_last(b, 4, "box")
    w_out, h_out = out_size
    sx, sy = w_out / b[..., 2], h_out / b[..., 3]
    tx = (w_out - 1) / 2.0 - b[..., 0] * sx
    ty = (h_out - 1) / 2.0 - b[..., 1] * sy
    zero = sx * 0
    return _stack([_stack([sx, zero, tx], -1), _stack([zero, sy, ty], -1)], -2)


def augmentation_matrix(b: np.ndarray, out_size: tuple[int, int], rotation_deg: float = 0.0, scale: float = 1.0,
                        shift: tuple[float, float] = (0.0, 0.0), flip: bool = False) -> np.ndarray:
    """One affine for a randomly transformed crop: shift, rotate and scale the box, then optionally mirror.

    The sampled region is the box b moved by shift * (w, h), enlarged by `scale` (scale > 1 zooms out) and
    rotated by `rotation_deg` about its centre; `flip` mirrors the crop left-right. Convention: with y
    pointing down, a positive angle turns the sampled box clockwise on screen, so the content of the crop
    appears turned counter-clockwise. Without arguments this equals `crop_matrix(b, out_size)`.

    Args:
        b: (4,) box (c_x, c_y, w, h) in image pixels.
        out_size: (W_out, H_out).

    Returns:
        (2, 3) float64 matrix, image pixels -> crop pixels.
    """
    b = np.asarray(b, dtype=np.float64)
    _check_last(b, 4, "box")
    w_out, h_out = out_size
    cx, cy = b[0] + shift[0] * b[2], b[1] + shift[1] * b[3]
    t = math.radians(rotation_deg)
    # Rotating the sampling box by +t rotates the points, relative to it, by -t.
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    lin = np.diag([w_out / (b[2] * scale), h_out / (b[3] * scale)]) @ rot
    trans = np.array([(w_out - 1) / 2.0, (h_out - 1) / 2.0]) - lin @ np.array([cx, cy])
    a = np.concatenate([lin, trans[:, None]], axis=1)
    if flip:
        a = np.array([[-1.0, 0.0, w_out - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([a, [0.0, 0.0, 1.0]])
    return a


def to_homogeneous(a: Array) -> Array:
    """(..., 2, 3) affine matrices -> (..., 3, 3) with last row (0, 0, 1)."""
    if isinstance(a, torch.Tensor):
        last = a.new_zeros(a.shape[:-2] + (1, 3))
        last[..., 0, 2] = 1.0
        return torch.cat([a, last], dim=-2)
    last = np.zeros(a.shape[:-2] + (1, 3), dtype=a.dtype)
    last[..., 0, 2] = 1.0
    return np.concatenate([a, last], axis=-2)


def invert_affine(a: Array) -> Array:
    """Inverse of (..., 2, 3) affine matrices."""
    inv = torch.linalg.inv(to_homogeneous(a)) if isinstance(a, torch.Tensor) else np.linalg.inv(to_homogeneous(a))
    return inv[..., :2, :]


def transform_points(a: Array, p: Array) -> Array:
    """Apply affine matrices (..., 2, 3) to points (..., K, 2): q = A [p; 1]."""
    _check_last(p, 2, "points")
    if tuple(a.shape[-2:]) != (2, 3):
        raise ValueError(f"affine: expected shape (..., 2, 3), got {tuple(a.shape)}")
    lin, trans = a[..., :2], a[..., 2]
    if isinstance(p, torch.Tensor):
        return p @ lin.transpose(-1, -2) + trans[..., None, :]
    return p @ np.swapaxes(lin, -1, -2) + trans[..., None, :]


def warp_image(image: np.ndarray, a: np.ndarray, out_size: tuple[int, int],
               interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Crop/warp one image with OpenCV (the data path): out(q) = image(A^{-1} q), zeros outside.

    Args:
        image: (H, W) or (H, W, C) array.
        a: (2, 3) image pixels -> output pixels.
        out_size: (W_out, H_out).
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image: expected (H, W) or (H, W, C), got shape {image.shape}")
    return cv2.warpAffine(image, np.asarray(a, dtype=np.float64), tuple(int(s) for s in out_size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _pixel_to_grid(size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """3x3 matrix: pixels of a (W, H) image -> grid_sample coordinates (align_corners=False)."""
    w, h = size
    m = like.new_zeros(3, 3)
    m[0, 0], m[0, 2] = 2.0 / w, 1.0 / w - 1.0
    m[1, 1], m[1, 2] = 2.0 / h, 1.0 / h - 1.0
    m[2, 2] = 1.0
    return m


def warp_images_torch(images: torch.Tensor, a: torch.Tensor, out_size: tuple[int, int],
                      mode: str = "bilinear") -> torch.Tensor:
    """Batched crops with `affine_grid` + `grid_sample`: out[n](q) = images[n](A_n^{-1} q), zeros outside.

    Args:
        images: (B, C, H, W) float tensor.
        a: (N, 2, 3) image pixels -> output pixels, with N a multiple of B: crops n*B/N .. belong to image
            n // (N // B) (so K joint crops per image come out in one call).
        out_size: (W_out, H_out).

    Returns:
        (N, C, H_out, W_out).
    """
    if images.ndim != 4:
        raise ValueError(f"images: expected (B, C, H, W), got shape {tuple(images.shape)}")
    if a.ndim != 3 or tuple(a.shape[1:]) != (2, 3) or a.shape[0] % images.shape[0]:
        raise ValueError(f"affine: expected (N, 2, 3) with N a multiple of {images.shape[0]}, got {tuple(a.shape)}")
    b, c, h, w = images.shape
    per_image = a.shape[0] // b
    a = a.to(images.dtype)
    # inv_ex: inv's numbers without its error check, which ONNX export cannot carry (boxes are checked upstream)
    theta = _pixel_to_grid((w, h), a) @ torch.linalg.inv_ex(to_homogeneous(a))[0] @ torch.linalg.inv_ex(
        _pixel_to_grid(out_size, a))[0]
    w_out, h_out = out_size
    if per_image > 1:
        # Sample each image K times without copying it: fold the K crops into the grid's height.
        grid = F.affine_grid(theta[:, :2], [a.shape[0], c, h_out, w_out], align_corners=False)
        grid = grid.view(b, per_image * h_out, w_out, 2)
        out = F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)
        return out.view(b, c, per_image, h_out, w_out).transpose(1, 2).reshape(a.shape[0], c, h_out, w_out)
    grid = F.affine_grid(theta[:, :2], [b, c, h_out, w_out], align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


def diam(y: Array, labelled: Array, skeleton: Skeleton) -> Array:
    """DeepPose pose diameter diam(y): distance between a shoulder and the opposite hip.

    Uses the skeleton's first torso diagonal (right shoulder to left hip) and falls back to the next one
    when an endpoint of the first is unlabelled.

    Args:
        y: (..., K, 2) joints in pixels.
        labelled: (..., K) bool, the joint has a real coordinate.

    Returns:
        (...,) diameters; NaN where no diagonal has both endpoints labelled.
    """
    _check_last(y, 2, "joints")
    is_torch = isinstance(y, torch.Tensor)
    out = None
    for a, b in reversed(skeleton.torso):  # the preferred diagonal overwrites the fallback
        length = (y[..., a, :] - y[..., b, :]).norm(dim=-1) if is_torch else np.linalg.norm(
            y[..., a, :] - y[..., b, :], axis=-1)
        ok = labelled[..., a] & labelled[..., b]
        if out is None:
            out = torch.full_like(length, float("nan")) if is_torch else np.full_like(length, np.nan, dtype=float)
        out = torch.where(ok, length, out) if is_torch else np.where(ok, length, out)
    return out


def joint_boxes(y: Array, diameter: Array, sigma: float) -> Array:
    """DeepPose Eq. (7): joint boxes b_i(y; sigma) = (y_i, sigma diam(y), sigma diam(y)).

    Args:
        y: (..., K, 2) joints in pixels.
        diameter: (...,) diam(y), e.g. from `diam`.
        sigma: box size relative to the pose diameter (paper: 2.0 on LSP, 1.0 on FLIC).

    Returns:
        (..., K, 4) boxes (c_x, c_y, w, h).
    """
    _check_last(y, 2, "joints")
    side = sigma * diameter[..., None] + y[..., 0] * 0
    return _stack([y[..., 0], y[..., 1], side, side], -1)
