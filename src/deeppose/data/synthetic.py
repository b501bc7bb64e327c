"""Procedurally drawn articulated people with the 14 LSP joints: the embedded default dataset.

Each person has random limb lengths and angles, random clothing and skin colours, a frontal or back view
(a frontal face shows skin and eyes, a back view dark hair, so left/right stays decidable), and a cluttered
textured background. Limbs are drawn in depth order and a joint is flagged occluded when another body part
covers it. Images are
deterministic per (seed, split, index), independent of how many are generated.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from deeppose.data.collect import OnBad
from deeppose.data.custom import load_custom, write_custom_json
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.skeleton import LSP14

# Body parts (drawing units) as (name, joint a, joint b); the torso and head are drawn separately.
LIMB_PARTS = (("r_lower_leg", 0, 1), ("r_upper_leg", 1, 2), ("l_upper_leg", 3, 4), ("l_lower_leg", 4, 5),
              ("r_lower_arm", 6, 7), ("r_upper_arm", 7, 8), ("l_upper_arm", 9, 10), ("l_lower_arm", 10, 11))
TORSO_ID, HEAD_ID = len(LIMB_PARTS) + 1, len(LIMB_PARTS) + 2
# Part ids (1-based limb index, TORSO_ID, HEAD_ID) that touch each LSP joint.
JOINT_PARTS = ({1}, {1, 2}, {2, TORSO_ID}, {3, TORSO_ID}, {3, 4}, {4}, {5}, {5, 6}, {6, TORSO_ID},
               {7, TORSO_ID}, {7, 8}, {8}, {TORSO_ID, HEAD_ID}, {HEAD_ID})
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: low-frequency colour noise plus random shapes and fine grain."""
    coarse = rng.uniform(30, 220, size=(4, 4, 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        p1, p2 = (tuple(int(v) for v in rng.integers(-size // 4, size + size // 4, 2)) for _ in range(2))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, p1, p2, colour, -1)
        elif kind == 1:
            cv2.ellipse(img, p1, (int(rng.integers(3, size // 3)), int(rng.integers(3, size // 3))),
                        float(rng.uniform(0, 180)), 0, 360, colour, -1)
        else:
            cv2.line(img, p1, p2, colour, int(rng.integers(1, 6)))
    img += rng.normal(0, 8, size=img.shape).astype(np.float32)
    return img


def _pose(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float, bool]:
    """Random LSP-14 joints (14, 2) in pixels, the torso length and whether the person faces the camera."""
    height = size * rng.uniform(0.65, 0.9)
    torso = height * 0.3
    a = math.radians(rng.normal(0, 12))  # torso lean
    up = np.array([math.sin(a), -math.cos(a)])
    right_img = np.array([math.cos(a), math.sin(a)])  # image-right, perpendicular to the torso
    frontal = bool(rng.random() < 0.75)
    side = -1.0 if frontal else 1.0  # a frontal person's right side is on the image's left
    hip_c = np.array([size / 2 + rng.uniform(-0.12, 0.12) * size, size / 2 + rng.uniform(0.0, 0.12) * size])
    neck = hip_c + torso * up
    j = np.zeros((14, 2))
    sw, hw = torso * rng.uniform(0.45, 0.6), torso * rng.uniform(0.3, 0.42)
    j[12] = neck
    j[8] = neck - 0.1 * torso * up + side * sw / 2 * right_img
    j[9] = neck - 0.1 * torso * up - side * sw / 2 * right_img
    j[2] = hip_c + side * hw / 2 * right_img
    j[3] = hip_c - side * hw / 2 * right_img
    head_dir = a + math.radians(rng.normal(0, 12))
    j[13] = neck + torso * rng.uniform(0.45, 0.6) * np.array([math.sin(head_dir), -math.cos(head_dir)])

    def chain(start: int, mid: int, end: int, l1: float, l2: float, mean_deg: float, spread: float,
              bend: float) -> None:
        t1 = math.radians(mean_deg + rng.uniform(-spread, spread))
        t2 = t1 + math.radians(rng.uniform(-bend, bend))
        j[mid] = j[start] + l1 * np.array([math.sin(t1), math.cos(t1)])  # angle 0 points down
        j[end] = j[mid] + l2 * np.array([math.sin(t2), math.cos(t2)])

    arm, leg = torso * rng.uniform(0.45, 0.6), torso * rng.uniform(0.6, 0.75)
    for shoulder, elbow, wrist in ((8, 7, 6), (9, 10, 11)):
        chain(shoulder, elbow, wrist, arm, arm * 0.9, 0.0, 110.0, 100.0)
    for hip, knee, ankle in ((2, 1, 0), (3, 4, 5)):
        chain(hip, knee, ankle, leg, leg, 0.0, 45.0, 60.0)
    return j, torso, frontal


def render_person(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one synthetic person.

    Returns:
        image (size, size, 3) uint8 RGB, joints (14, 2) float32 pixels (LSP order), visible (14,) bool.
    """
    image = _background(rng, size)
    joints, torso, frontal = _pose(rng, size)
    shirt, trousers = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    skin = np.array([rng.uniform(120, 240), rng.uniform(80, 200), rng.uniform(60, 170)])
    parts = np.zeros((size, size), np.uint8)
    shift = 4  # sub-pixel drawing precision: coordinates scaled by 2**shift
    pt = lambda p: (int(round(p[0] * 16)), int(round(p[1] * 16)))  # noqa: E731

    def draw_limb(k: int) -> None:
        name, a, b = LIMB_PARTS[k]
        colour = trousers if "leg" in name else (shirt if "upper" in name else skin)
        width = max(2, int(torso * (0.22 if "leg" in name else 0.17)))
        cv2.line(image, pt(joints[a]), pt(joints[b]), tuple(float(c) for c in colour), width, cv2.LINE_AA, shift)
        cv2.line(parts, pt(joints[a]), pt(joints[b]), k + 1, width, cv2.LINE_8, shift)

    # Depth order: the far side (chosen at random) first, then torso, the near side, then the head.
    far_is_left = bool(rng.random() < 0.5)
    far = [k for k, (n, _, _) in enumerate(LIMB_PARTS) if n.startswith("l_" if far_is_left else "r_")]
    near = [k for k in range(len(LIMB_PARTS)) if k not in far]
    for k in far:
        draw_limb(k)
    quad = np.array([pt(joints[i]) for i in (8, 9, 3, 2)], np.int32)
    cv2.fillConvexPoly(image, quad, tuple(float(c) for c in shirt * 0.85), cv2.LINE_AA, shift)
    cv2.fillConvexPoly(parts, quad, TORSO_ID, cv2.LINE_8, shift)
    for k in near:
        draw_limb(k)
    head_c = (joints[12] + joints[13]) / 2
    radius = int(np.linalg.norm(joints[13] - joints[12]) / 2 * 16)
    # The view cue: a frontal face shows skin and eyes, the back of a head shows dark hair.
    head_colour = skin if frontal else rng.uniform(10, 70, 3)
    cv2.circle(image, pt(head_c), radius, tuple(float(c) for c in head_colour), -1, cv2.LINE_AA, shift)
    cv2.circle(parts, pt(head_c), radius, HEAD_ID, -1, cv2.LINE_8, shift)
    if frontal:  # eyes: the cue that tells a frontal view (right on image left) from a back view
        d = joints[13] - joints[12]
        perp = np.array([-d[1], d[0]]) * 0.18
        for s in (-1, 1):
            cv2.circle(image, pt(head_c + 0.1 * d + s * perp), max(16, radius // 4), (20.0, 20.0, 20.0), -1,
                       cv2.LINE_AA, shift)
    image = cv2.GaussianBlur(image, (3, 3), 0.6) + rng.normal(0, 4, size=image.shape).astype(np.float32)
    visible = np.zeros(14, bool)
    for i, (x, y) in enumerate(joints):
        xi, yi = int(round(x)), int(round(y))
        if 0 <= xi < size and 0 <= yi < size:
            visible[i] = int(parts[yi, xi]) in JOINT_PARTS[i]
    return np.clip(image, 0, 255).astype(np.uint8), joints.astype(np.float32), visible


def write_synthetic(root: str | Path, counts: dict[str, int], seed: int = 0, size: int = 128,
                    progress: bool = True) -> Path:
    """Generate a synthetic dataset folder: `images/<split>_<i>.png` and `annotations.json` (custom format).

    Args:
        counts: number of people per split, e.g. {"train": 800, "val": 100, "test": 200}.
        seed: the same seed gives byte-identical images.
    """
    root = Path(root)
    unknown = set(counts) - set(SPLIT_CODES)
    if unknown:
        raise DeepPoseError(root, f"unknown synthetic split(s) {sorted(unknown)} (train, val, test)")
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    total = sum(counts.values())
    with tqdm(total=total, desc="synthetic people", disable=not progress, unit="img") as bar:
        for split, n in counts.items():
            for i in range(n):
                rng = np.random.default_rng([seed, SPLIT_CODES[split], i])
                image, joints, visible = render_person(rng, size)
                name = f"images/{split}_{i:05d}.png"
                cv2.imwrite(str(root / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                flags = np.where(visible, 2, 1)
                records.append({"image": name, "split": split,
                                "joints": [[float(x), float(y), int(v)] for (x, y), v in zip(joints, flags)]})
                bar.update(1)
    return write_custom_json(root / "annotations.json", LSP14, records)


def load_synthetic(root: str | Path, split: str = "train", on_bad: OnBad = "error") -> PoseDataset:
    """Load a folder written by `write_synthetic` (or `deeppose data synth`)."""
    root = Path(root)
    if not (root / "annotations.json").is_file():
        raise DeepPoseError(root, "no synthetic dataset here (annotations.json missing); create one with "
                                  "`deeppose data synth --root DIR`")
    return load_custom(root / "annotations.json", split, on_bad, name="synthetic")
