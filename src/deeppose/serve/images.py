"""What the Python API accepts as an image (RGB uint8 (H, W, 3) arrays, and the usual other forms converted) and
what the command line and the server accept as a box (x,y,w,h text).

BGR cannot be told from RGB by looking at an array: arrays are taken as RGB (OpenCV's `cv2.imread` gives BGR;
`Predictor.predict` reads a file path as RGB and spares the question).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeppose.errors import DeepPoseError


def as_rgb(image: Any) -> np.ndarray:
    """An RGB (H, W, 3) uint8 array from an RGB array (returned as is), a grayscale (H, W) or (H, W, 1) array, an
    RGBA (H, W, 4) array (alpha dropped) or a PIL image (any mode); ValueError saying what is expected otherwise
    (another dtype is refused rather than rescaled by a guess)."""
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an RGB image as a (H, W, 3) uint8 array (or a PIL image), got "
                         f"{type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (0..255), got dtype {image.dtype}; convert it, e.g. "
                         f"(image * 255).astype(np.uint8) for floats in [0, 1]")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[..., :3])
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"expected an RGB image as a (H, W, 3) uint8 array, got shape {image.shape}")
    return image


def parse_box(text: str, what: str = "--box") -> np.ndarray:
    """A person box from text, "x,y,w,h" or "[x, y, w, h]" (pixels, from the top-left corner), as a (4,) array;
    DeepPoseError saying what `what` (the option or field) expects when it is not 4 finite numbers with positive
    width and height."""
    try:
        x, y, w, h = (float(v) for v in text.strip().removeprefix("[").removesuffix("]").split(","))
    except ValueError:
        raise DeepPoseError(None, f"{what} must be x,y,w,h (top-left corner, width, height), got {text!r}") from None
    if not np.isfinite([x, y, w, h]).all() or w <= 0 or h <= 0:
        raise DeepPoseError(None, f"{what} must be finite with positive width and height, got {text!r}")
    return np.array([x, y, w, h])
