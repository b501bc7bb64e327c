"""Augmentation: random translation, scale, rotation and flip composed into one affine and applied by one warp.

The crop a model sees is the sample's box (or the whole image) made square, moved, scaled, rotated and
optionally mirrored; joints go through the same matrix, are expressed in the crop's normalized
coordinates (DeepPose Eq. 1 on the crop's box) and, after a flip, are re-ordered left <-> right.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from deeppose.data.everyday import Everyday, draw_everyday
from deeppose.data.sample import Sample
from deeppose.geometry import (
    augmentation_matrix,
    crop_pixel_to_normalized,
    square_box,
    transform_points,
    warp_image,
    whole_image_box,
)
from deeppose.skeleton import Skeleton


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random transform (all zero/False: the plain crop).

    Attributes:
        rotation_deg: rotation drawn uniformly from [-rotation_deg, rotation_deg].
        scale: (low, high) box enlargement drawn log-uniformly (> 1 zooms out).
        shift: box-centre shift drawn uniformly from [-shift, shift] times the box size, per axis.
        flip_prob: probability of a left-right mirror (with left/right joints swapped).
        brightness, contrast: photometric jitter amplitudes (multiplicative, around 1).
        lying_prob: probability of turning the person by a further +-90 degrees (sitting, lying, upside down).
        cut_prob, occlude_prob, saturation, gamma, blur_prob, jpeg_prob: everyday photos
            (`data.everyday.draw_everyday`): the frame cutting the person, an occluder pasted from another
            training photo, colour and light, blur, JPEG re-compression.
    """

    rotation_deg: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    flip_prob: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    lying_prob: float = 0.0
    cut_prob: float = 0.0
    occlude_prob: float = 0.0
    saturation: float = 0.0
    gamma: float = 0.0
    blur_prob: float = 0.0
    jpeg_prob: float = 0.0


@dataclass(frozen=True)
class CropParams:
    """One draw of the random transform."""

    rotation_deg: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    everyday: Everyday = field(default_factory=Everyday)


def sample_params(rng: np.random.Generator, aug: Augmentation) -> CropParams:
    """Draw one CropParams from the ranges in `aug` (the later options draw only when on, after the others, so
    turning one on leaves every earlier draw as it was)."""
    lo, hi = aug.scale
    if not 0 < lo <= hi:
        raise ValueError(f"augmentation scale range must satisfy 0 < low <= high, got {aug.scale}")
    params = CropParams(
        rotation_deg=float(rng.uniform(-aug.rotation_deg, aug.rotation_deg)),
        scale=float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        shift=(float(rng.uniform(-aug.shift, aug.shift)), float(rng.uniform(-aug.shift, aug.shift))),
        flip=bool(rng.random() < aug.flip_prob),
        brightness=float(1.0 + rng.uniform(-aug.brightness, aug.brightness)),
        contrast=float(1.0 + rng.uniform(-aug.contrast, aug.contrast)),
    )
    if aug.lying_prob and rng.random() < aug.lying_prob:
        params = replace(params, rotation_deg=params.rotation_deg + float(rng.choice([-90.0, 90.0])))
    everyday = draw_everyday(rng, aug.cut_prob, aug.occlude_prob, aug.saturation, aug.gamma, aug.blur_prob,
                             aug.jpeg_prob)
    return replace(params, everyday=everyday) if everyday != Everyday() else params


def sample_box(sample: Sample, image_shape: tuple[int, ...], square: bool = True) -> np.ndarray:
    """The crop box b^0 of a sample: its person box, else the whole image (LSP's convention); (4,) float64."""
    box = whole_image_box(image_shape[1], image_shape[0]) if sample.box is None else sample.box.astype(np.float64)
    return square_box(box) if square else box


def crop_sample(image: np.ndarray, sample: Sample, skeleton: Skeleton, out_size: tuple[int, int],
                params: CropParams = CropParams(), square: bool = True
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Crop (and augment) one sample with a single affine warp.

    Args:
        image: (H, W, 3) uint8 RGB, the sample's image.
        out_size: (W_out, H_out) of the crop.
        params: the random transform (default: the plain crop of the box).

    Returns:
        crop (H_out, W_out, 3) uint8; joints (K, 2) float32 in normalized crop coordinates ([-0.5, 0.5]
        inside); labelled (K,) bool; visible (K,) bool, False for joints pushed out of the crop;
        affine (2, 3) float64 mapping image pixels to crop pixels (before the joint re-ordering of a flip).
    """
    box = sample_box(sample, image.shape, square)
    a = augmentation_matrix(box, out_size, params.rotation_deg, params.scale, params.shift, params.flip)
    crop = warp_image(image, a, out_size)
    if params.brightness != 1.0 or params.contrast != 1.0:
        mean = crop.mean()
        crop = np.clip((crop.astype(np.float32) - mean) * params.contrast + mean * params.brightness, 0, 255)
        crop = crop.astype(np.uint8)
    joints = crop_pixel_to_normalized(transform_points(a, sample.joints.astype(np.float64)), out_size)
    labelled, visible = sample.labelled, sample.visible
    if params.flip:
        perm = skeleton.flip_permutation()
        joints, labelled, visible = joints[perm], labelled[perm], visible[perm]
    inside = (np.abs(joints) <= 0.5).all(axis=1)
    return crop, joints.astype(np.float32), labelled.copy(), visible & inside, a
