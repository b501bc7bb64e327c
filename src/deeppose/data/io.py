"""File access with errors that name the file: images, MATLAB files, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy.io

from deeppose.errors import DeepPoseError


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB; DeepPoseError if it is missing or cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "image file not found")
    return decode_image(np.fromfile(str(path), dtype=np.uint8), path)


def decode_image(data: bytes | np.ndarray, name: str | Path | None = None) -> np.ndarray:
    """Decode an encoded image (the bytes of a file: any format OpenCV reads, EXIF orientation applied) as
    (H, W, 3) uint8 RGB; DeepPoseError naming `name` if it cannot be decoded."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise DeepPoseError(name, "corrupt or unsupported image (could not decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def verify_image(path: str | Path) -> tuple[int, int]:
    """Fully decode an image with Pillow (which, unlike OpenCV, rejects truncated files); return (width, height)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "image file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return im.size
    except Exception as exc:  # Pillow raises several types for bad files
        raise DeepPoseError(path, f"corrupt image ({type(exc).__name__}: {exc})") from None


def load_mat(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Load a MATLAB file; DeepPoseError if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "annotation file not found")
    try:
        return scipy.io.loadmat(str(path), **kwargs)
    except Exception as exc:
        raise DeepPoseError(path, f"not a readable MATLAB file ({type(exc).__name__}: {exc})") from None


def load_json(path: str | Path) -> Any:
    """Load a JSON file; DeepPoseError if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "annotation file not found")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeepPoseError(path, f"malformed JSON ({exc})") from None


def require_dir(path: str | Path, what: str = "dataset folder") -> Path:
    """Return the folder as a Path; DeepPoseError if it does not exist."""
    path = Path(path)
    if not path.is_dir():
        raise DeepPoseError(path, f"{what} not found")
    return path
