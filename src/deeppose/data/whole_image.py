"""Whole-photo views for training the person localizer: people small and off centre, and views with nobody.

A user's photo is not an LSP crop: the person may fill a sixth of it, stand anywhere, and other people or
plain background may be in view. Each item is one of three views of a training photo, drawn by (seed, epoch,
index):

- whole: the whole image made square (padding outside), exactly what the localizer sees at inference;
- zoom-out: a square crop in which the person's box (`joints_box` of the labelled joints at `box_scale`)
  takes a side fraction f of the crop, f log-uniform in `person_fraction` (0.15-1 by default), the person
  anywhere inside it;
- nobody: a square region of the photo that stays clear of the person's box (enlarged by `clearance`), or,
  when the photo has no such region, a synthetic background (noise, blurred noise, a flat colour, a gradient,
  shapes). Its presence label is 0 and its joints carry no loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import SeededDataset
from deeppose.data.transforms import Augmentation
from deeppose.geometry import (
    augmentation_matrix,
    crop_pixel_to_normalized,
    joints_box,
    square_box,
    transform_points,
    warp_image,
    whole_image_box,
)


@dataclass(frozen=True)
class ZoomOut:
    """How the localizer's training views are drawn.

    Attributes (which view, then how a person view is framed and jittered, then where a nobody view lies):
        whole_prob: share of views that are the whole image.
        negative_prob: share of views with nobody in them.
        synthetic_prob: share of nobody views that are synthetic even when the photo has room for one.
        letterbox_prob: share of nobody views shown as a non-square picture is at inference: centred, with black
            bars on two sides (without them, the bars alone would say "a photo, so a person").
        person_fraction: (low, high) side of the person's box over the crop side, drawn log-uniformly.
        box_scale: the person's box is `joints_box(joints, labelled, box_scale)`.
        inside_prob: share of zoom-out views kept inside the squared photo (as a real photo frames a person);
            the others may reach past it, padded with black as the squared photo is.
        augment: the rotation, mirror and photometric jitter of person views (`transforms.Augmentation`; its
            scale and shift are not used: the zoom-out draws the crop).
        clearance: a nobody view keeps this many person-box sides' distance (box enlarged by it).
        min_region: a nobody view's side is at least this fraction of the photo's shorter side.
    """

    whole_prob: float = 0.3
    negative_prob: float = 0.2
    synthetic_prob: float = 0.35
    letterbox_prob: float = 0.5
    # person views
    person_fraction: tuple[float, float] = (0.15, 1.0)
    augment: Augmentation = field(default_factory=lambda: Augmentation(15.0, flip_prob=0.5, brightness=0.25,
                                                                       contrast=0.25))
    box_scale: float = 1.33
    inside_prob: float = 0.7
    # nobody views
    clearance: float = 1.3
    min_region: float = 0.25


def synthetic_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A (size, size, 3) uint8 picture with nobody in it: noise, blurred noise, a flat colour, a gradient or
    random shapes, chosen by `rng`."""
    kind = int(rng.integers(5))
    if kind == 0:
        return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    if kind == 1:
        noise = rng.normal(0.0, 1.0, (size, size, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(1.0, size / 6)))
        noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
        return (noise * 255).astype(np.uint8)
    if kind == 2:
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (size, size, 3)).copy()
    if kind == 3:
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)
        ramp = t[None, :] if rng.random() < 0.5 else t[:, None]
        a, b = rng.integers(0, 256, 3).astype(np.float32), rng.integers(0, 256, 3).astype(np.float32)
        return (a + (b - a) * ramp[..., None] * np.ones((size, size, 1), np.float32)).astype(np.uint8)
    image = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (size, size, 3)).copy()
    for _ in range(int(rng.integers(2, 12))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        p, q = rng.integers(0, size, 2), rng.integers(0, size, 2)
        shape = int(rng.integers(3))
        if shape == 0:
            cv2.rectangle(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, -1)
        elif shape == 1:
            cv2.circle(image, (int(p[0]), int(p[1])), int(rng.integers(2, max(3, size // 3))), colour, -1)
        else:
            cv2.line(image, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, int(rng.integers(1, 6)))
    return image


def letterbox(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    """The square `crop` as a non-square picture squared at inference: a centred band (aspect 0.4-0.95 of the
    side, horizontal or vertical) kept, black bars on the other two sides."""
    size = crop.shape[0]
    keep = int(round(size * rng.uniform(0.4, 0.95)))
    lo = (size - keep) // 2
    out = np.zeros_like(crop)
    if rng.random() < 0.5:
        out[lo:lo + keep] = crop[lo:lo + keep]
    else:
        out[:, lo:lo + keep] = crop[:, lo:lo + keep]
    return out


def clear_region(rng: np.random.Generator, width: int, height: int, person: np.ndarray, zoom: ZoomOut,
                 tries: int = 20) -> np.ndarray | None:
    """A square box (c_x, c_y, s, s) inside the image that misses the person's box enlarged by `zoom.clearance`,
    or None when none of `tries` random draws does.

    Args:
        person: (4,) the person's box (c_x, c_y, w, h) in pixels.
    """
    short = min(width, height)
    half = person[2:] * zoom.clearance / 2
    lo_p, hi_p = person[:2] - half, person[:2] + half
    for _ in range(tries):
        side = float(rng.uniform(zoom.min_region, 1.0)) * short
        # edges in pixel coordinates: the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5]
        x0, y0 = rng.uniform(-0.5, width - 0.5 - side + 1e-9), rng.uniform(-0.5, height - 0.5 - side + 1e-9)
        if x0 + side <= lo_p[0] or x0 >= hi_p[0] or y0 + side <= lo_p[1] or y0 >= hi_p[1]:
            return np.array([x0 + side / 2, y0 + side / 2, side, side])
    return None


def zoom_out_box(rng: np.random.Generator, person: np.ndarray, zoom: ZoomOut, limit: np.ndarray | None = None
                 ) -> np.ndarray:
    """A square crop box (c_x, c_y, s, s) in which the person's box takes a side fraction drawn from
    `zoom.person_fraction`, placed anywhere inside it; with `limit` (a square box), the crop is kept no larger
    than it and inside it as far as the person allows."""
    lo, hi = zoom.person_fraction
    extent = float(max(person[2], person[3]))
    side = extent / float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    if limit is not None:
        side = max(min(side, float(limit[2])), extent)
    room = (side - extent) / 2
    low, high = person[:2] - room, person[:2] + room
    if limit is not None:  # the crop's centre keeps the crop inside `limit` where that still holds the person
        inner = (float(limit[2]) - side) / 2
        low, high = np.maximum(low, limit[:2] - inner), np.minimum(high, limit[:2] + inner)
        low, high = np.minimum(low, high), np.maximum(low, high)
    centre = rng.uniform(low, high)
    return np.array([centre[0], centre[1], side, side])


class WholeImageDataset(SeededDataset):
    """Localizer training/validation items from a PoseDataset of photos with one annotated person each.

    Each item is a dict: image (3, S, S) uint8; joints (K, 2) float32 normalized crop coordinates; weight (K,)
    bool (labelled, inside the crop, and a person view); presence float32 (1: the person is in view, 0: a
    nobody view); affine (2, 3) float32 image pixels -> crop pixels (the identity for a synthetic background); index.

    With `zoom=None` every item is the whole image (validation, no randomness).
    """

    def __init__(self, dataset: PoseDataset, input_size: int, zoom: ZoomOut | None = None, seed: int = 0) -> None:
        super().__init__(dataset, input_size, seed)
        self.zoom = zoom

    def view(self, rng: np.random.Generator | None, image: np.ndarray, person: np.ndarray
             ) -> tuple[np.ndarray | None, bool]:
        """(crop box or None for a synthetic background, whether the person is in view) of one draw."""
        height, width = image.shape[:2]
        whole = square_box(whole_image_box(width, height))
        if rng is None or self.zoom is None:
            return whole, True
        u = rng.random()
        if u < self.zoom.negative_prob:
            if rng.random() < self.zoom.synthetic_prob:
                return None, False
            return clear_region(rng, width, height, person, self.zoom), False
        if u < self.zoom.negative_prob + self.zoom.whole_prob:
            return whole, True
        return zoom_out_box(rng, person, self.zoom, whole if rng.random() < self.zoom.inside_prob else None), True

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = self.dataset.samples[index]
        image = read_image(sample.image_path)
        skeleton = self.dataset.skeleton
        size = (self.input_size, self.input_size)
        rng = None if self.zoom is None else self.rng(index)
        person = joints_box(sample.joints, sample.labelled, self.zoom.box_scale if self.zoom else 1.33)
        box, present = self.view(rng, image, person)
        k = skeleton.num_joints
        if box is None:  # nobody, synthetic
            crop = synthetic_background(rng, self.input_size)
            a = np.eye(2, 3)  # the picture is its own crop
            joints, weight = np.zeros((k, 2)), np.zeros(k, bool)
        else:
            rotation, flip, brightness, contrast = 0.0, False, 1.0, 1.0
            if rng is not None:
                z = self.zoom.augment
                rotation = float(rng.uniform(-z.rotation_deg, z.rotation_deg))
                flip = bool(rng.random() < z.flip_prob)
                brightness = 1.0 + float(rng.uniform(-z.brightness, z.brightness))
                contrast = 1.0 + float(rng.uniform(-z.contrast, z.contrast))
            a = augmentation_matrix(box, size, rotation, 1.0, (0.0, 0.0), flip)
            crop = warp_image(image, a, size)
            if brightness != 1.0 or contrast != 1.0:
                mean = crop.mean()
                crop = np.clip((crop.astype(np.float32) - mean) * contrast + mean * brightness, 0, 255).astype(np.uint8)
            joints = crop_pixel_to_normalized(transform_points(a, sample.joints.astype(np.float64)), size)
            labelled = sample.labelled
            if flip:
                perm = skeleton.flip_permutation()
                joints, labelled = joints[perm], labelled[perm]
            weight = labelled & (np.abs(joints) <= 0.5).all(axis=1) & present
        if not present and rng is not None and rng.random() < self.zoom.letterbox_prob:
            crop = letterbox(rng, crop)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            "joints": torch.from_numpy(joints.astype(np.float32)),
            "weight": torch.from_numpy(np.asarray(weight, bool)),
            "presence": torch.tensor(float(present)),
            "affine": torch.from_numpy(a.astype(np.float32)),
            "index": index,
        }
