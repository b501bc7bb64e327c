"""Crops made to look like everyday photos: people cut by the frame, occluded by things, blurred, re-compressed,
in other colours and light.

Each is a pure function of the crop (and, for the geometric ones, the joints in the crop's normalized coordinates,
[-0.5, 0.5] inside). A joint that ends up hidden (cut off, under an occluder) keeps its coordinate and its
`labelled` flag, so the network still learns where it is; only its `visible` flag is cleared. The random draws
are in `Everyday` (one per crop), drawn by `draw_everyday`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deeppose.geometry import crop_pixel_to_normalized

SIDES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class Everyday:
    """One draw of the everyday-photo transforms (the defaults change nothing).

    Attributes:
        cut: (side, fraction): the frame ends `fraction` of the crop from that side (SIDES index); None: no cut.
        occluder: (cx, cy, rx, ry, source, sx, sy): an elliptical patch centred at (cx, cy) with radii (rx, ry),
            all in normalized crop coordinates, taken from training photo number `source` (a fraction of the
            dataset's length) around its point (sx, sy) (fractions of its width and height); None: no occluder.
        saturation: colour saturation factor (1: unchanged; 0: grey).
        gamma: light curve exponent on [0, 1] intensities (1: unchanged).
        blur_sigma: Gaussian blur in pixels (0: none).
        jpeg_quality: re-encode as JPEG at this quality (0: no).
    """

    cut: tuple[int, float] | None = None
    occluder: tuple[float, float, float, float, float, float, float] | None = None
    saturation: float = 1.0
    gamma: float = 1.0
    blur_sigma: float = 0.0
    jpeg_quality: int = 0


def draw_everyday(rng: np.random.Generator, cut_prob: float = 0.0, occlude_prob: float = 0.0,
                  saturation: float = 0.0, gamma: float = 0.0, blur_prob: float = 0.0, jpeg_prob: float = 0.0
                  ) -> Everyday:
    """Draw one `Everyday`: each transform with its probability (or amplitude); a transform that is off draws
    nothing, so enabling one does not change the others' draws.

    Ranges: the frame cuts 15-50 % of the crop; an occluder's radii are 10-25 % of the crop, its centre anywhere in
    the middle 80 %; saturation x [1 - a, 1 + a]; gamma exp([-a, a]); blur sigma 0.5-2 px; JPEG quality 15-60.
    """
    cut = occluder = None
    if cut_prob and rng.random() < cut_prob:
        cut = (int(rng.integers(4)), float(rng.uniform(0.15, 0.5)))
    if occlude_prob and rng.random() < occlude_prob:
        occluder = (float(rng.uniform(-0.4, 0.4)), float(rng.uniform(-0.4, 0.4)), float(rng.uniform(0.1, 0.25)),
                    float(rng.uniform(0.1, 0.25)), float(rng.random()), float(rng.uniform(0.2, 0.8)),
                    float(rng.uniform(0.2, 0.8)))
    sat = float(1 + rng.uniform(-saturation, saturation)) if saturation else 1.0
    gam = float(np.exp(rng.uniform(-gamma, gamma))) if gamma else 1.0
    sigma = float(rng.uniform(0.5, 2.0)) if blur_prob and rng.random() < blur_prob else 0.0
    quality = int(rng.integers(15, 61)) if jpeg_prob and rng.random() < jpeg_prob else 0
    return Everyday(cut, occluder, sat, gam, sigma, quality)


def pixel_grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Normalized (x, y) coordinates of every pixel centre of a (W, H) crop: two (H, W) arrays."""
    w, h = size
    return np.meshgrid(crop_pixel_to_normalized(np.arange(w, dtype=np.float64), w),
                       crop_pixel_to_normalized(np.arange(h, dtype=np.float64), h))


def cut_mask(points: np.ndarray, side: int, fraction: float) -> np.ndarray:
    """Which of (N, 2) normalized points lie beyond the frame that ends `fraction` of the crop from `side`: (N,)."""
    axis = 0 if side in (0, 1) else 1
    sign = -1 if side in (0, 2) else 1
    return sign * points[..., axis] > 0.5 - fraction


def cut_by_frame(crop: np.ndarray, joints: np.ndarray, side: int, fraction: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The photo ends before the person does: blank (zeros, as outside any image) the band of the crop beyond the
    frame. Returns (the new (H, W, 3) crop, (K,) bool: joints now out of view)."""
    h, w = crop.shape[:2]
    xs, ys = pixel_grid((w, h))
    out = crop.copy()
    out[cut_mask(np.stack([xs, ys], axis=-1), side, fraction)] = 0
    return out, cut_mask(joints, side, fraction)


def ellipse_mask(points: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """Which of (..., 2) normalized points lie inside the ellipse: (...,) bool."""
    return ((points[..., 0] - cx) / rx) ** 2 + ((points[..., 1] - cy) / ry) ** 2 <= 1.0


def paste_occluder(crop: np.ndarray, joints: np.ndarray, source: np.ndarray,
                   occluder: tuple[float, float, float, float, float, float, float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Hide part of the person behind a thing: an elliptical patch of another photo `source` (H', W', 3), taken at
    the crop's scale around (sx, sy) of it, pasted with its centre at (cx, cy).

    Returns (the new (H, W, 3) crop, (K,) bool: joints now under the occluder).
    """
    cx, cy, rx, ry, _, sx, sy = occluder
    h, w = crop.shape[:2]
    sh, sw = source.shape[:2]
    # translate the source so that its point (sx, sy) lands on the crop's point (cx, cy), one source pixel per pixel
    px, py = (cx + 0.5) * w - 0.5, (cy + 0.5) * h - 0.5
    a = np.array([[1.0, 0.0, px - sx * sw], [0.0, 1.0, py - sy * sh]])
    patch = cv2.warpAffine(source, a, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    xs, ys = pixel_grid((w, h))
    inside = ellipse_mask(np.stack([xs, ys], axis=-1), cx, cy, rx, ry)
    out = crop.copy()
    out[inside] = patch[inside]
    return out, ellipse_mask(joints, cx, cy, rx, ry)


def colour_and_light(crop: np.ndarray, saturation: float, gamma: float) -> np.ndarray:
    """Saturation (blend with the crop's grey) and a gamma curve on [0, 1] intensities: (H, W, 3) uint8 -> same."""
    x = crop.astype(np.float32)
    if saturation != 1.0:
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * saturation
    if gamma != 1.0:
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** gamma
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def blur(crop: np.ndarray, sigma: float) -> np.ndarray:
    """Out of focus or moving: a Gaussian blur of `sigma` pixels."""
    return cv2.GaussianBlur(crop, (0, 0), sigma)


def jpeg(crop: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip at `quality` (its blocks and ringing), (H, W, 3) uint8 RGB -> same."""
    ok, data = cv2.imencode(".jpg", crop[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def apply_everyday(crop: np.ndarray, joints: np.ndarray, visible: np.ndarray, draw: Everyday,
                   occluder_source: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply one draw to a training crop.

    Args:
        crop: (H, W, 3) uint8 RGB.
        joints: (K, 2) normalized crop coordinates (unchanged: hidden joints keep their place).
        visible: (K,) bool.
        draw: the transforms; its occluder needs `occluder_source`, the photo it is cut from.

    Returns:
        (the new crop, (K,) bool visible: False where a joint was cut off or covered).
    """
    visible = visible.copy()
    if draw.cut is not None:
        crop, hidden = cut_by_frame(crop, joints, *draw.cut)
        visible &= ~hidden
    if draw.occluder is not None:
        if occluder_source is None:
            raise ValueError("apply_everyday: the draw has an occluder but no photo to cut it from")
        crop, hidden = paste_occluder(crop, joints, occluder_source, draw.occluder)
        visible &= ~hidden
    if draw.saturation != 1.0 or draw.gamma != 1.0:
        crop = colour_and_light(crop, draw.saturation, draw.gamma)
    if draw.blur_sigma > 0:
        crop = blur(crop, draw.blur_sigma)
    if draw.jpeg_quality > 0:
        crop = jpeg(crop, draw.jpeg_quality)
    return crop, visible
