"""Finding the person in a whole photo, and saying when there is nobody.

Two passes, DeepPose's cascade applied to the person box itself:

1. the localizer (`models.localizer.PersonLocalizer`) sees the whole photo, squared, and regresses a coarse
   pose and a presence logit; the person box b^1 follows from that pose by the box rule;
2. the pose network predicts the joints inside b^s; the box rule on that prediction gives b^{s+1}, the next
   crop (Eq. 6-7 with the person box in place of a joint box). This stops when the box moves by less than
   `tol` of its side, or after `recrops` re-crops: a box that is its own rule's image is a fixed point and is
   left unchanged.

The box rule (`person_box`): centre = the middle of the predicted joints' extent, side = `scale` times its
longer side (1.33 by default: LSP frames its people so, and the pose network was trained on LSPET crops
framed that way), square. `person_score` is the localizer's presence probability (its logit through the Platt
scaling fitted on validation data, `calibrate_presence`); `person_found` is person_score >= 0.5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from deeppose.errors import DeepPoseError
from deeppose.geometry import joints_box, square_box, whole_image_box

BOX_SCALE = 1.33
RECROPS = 2
TOLERANCE = 0.05
FOUND_THRESHOLD = 0.5
# datasets whose images are whole photos with no person box: their annotated box is drawn around the joints
JOINTS_BOX_DATASETS = ("lspet",)


def person_box(joints: np.ndarray, scale: float = BOX_SCALE) -> np.ndarray:
    """The box rule: a square around predicted joints (all of them), side `scale` x their longer extent.

    Args:
        joints: (K, 2) or (N, K, 2) pixels.

    Returns:
        (4,) or (N, 4) float64 boxes (c_x, c_y, s, s).
    """
    joints = np.asarray(joints, np.float64)
    if joints.ndim == 3:
        return np.stack([person_box(j, scale) for j in joints]) if len(joints) else np.zeros((0, 4))
    if not np.isfinite(joints).all():
        raise ValueError("person_box: joints contain NaN or infinity")
    return joints_box(joints, np.ones(len(joints), bool), scale)


def box_change(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """How far a box moved: max(centre shift / old side, |log(new side / old side)|); (...,) for (..., 4)."""
    old, new = np.asarray(old, np.float64), np.asarray(new, np.float64)
    side = np.maximum(old[..., 2], old[..., 3])
    shift = np.abs(new[..., :2] - old[..., :2]).max(axis=-1) / side
    grow = np.abs(np.log(np.maximum(new[..., 2], new[..., 3]) / side))
    return np.maximum(shift, grow)


def checked_box(box: np.ndarray, width: int, height: int, source: str | None = None) -> np.ndarray:
    """A caller's person box (c_x, c_y, w, h), float64, unchanged when it overlaps the image (the crop pads
    what lies outside, as in training); DeepPoseError when it is not a box or lies outside the image.

    Pixel centres are at integers, so the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5].
    """
    box = np.asarray(box, np.float64)
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise DeepPoseError(source, f"person box must be 4 finite numbers with positive width and height, got "
                                    f"{np.asarray(box).tolist()}")
    lo = np.maximum(box[:2] - box[2:] / 2, -0.5)
    hi = np.minimum(box[:2] + box[2:] / 2, np.array([width, height]) - 0.5)
    if (hi - lo < 1.0).any():
        raise DeepPoseError(source, f"person box {box.tolist()} (centre, size) lies outside the {width} x {height} "
                                    f"image")
    return box


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes (..., 4) (c_x, c_y, w, h)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lo = np.maximum(a[..., :2] - a[..., 2:] / 2, b[..., :2] - b[..., 2:] / 2)
    hi = np.minimum(a[..., :2] + a[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2)
    inter = np.clip(hi - lo, 0, None).prod(-1)
    return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)


def person_in_box(boxes: np.ndarray, joints: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Whether each box holds its annotated person: IoU >= 0.5 with the box the box rule draws around the labelled
    joints (scale 1.33), whatever box convention the dataset has.

    Args:
        boxes: (N, 4) (c_x, c_y, w, h); joints: (N, K, 2) annotated joints in pixels; labelled: (N, K) bool.

    Returns:
        (N,) bool (False for an image with no labelled joint).
    """
    out = np.zeros(len(boxes), bool)
    for i, (box, y, lab) in enumerate(zip(boxes, joints, labelled)):
        out[i] = bool(np.asarray(lab).any()) and iou(box, joints_box(y, lab, BOX_SCALE)) >= 0.5
    return out


def presence_probability(logits: np.ndarray | torch.Tensor, a: float, b: float) -> np.ndarray:
    """person_score = sigmoid(a * logit + b): the presence logit through its Platt scaling; (N,) in [0, 1]."""
    z = a * np.asarray(logits, np.float64) + b
    return 1.0 / (1.0 + np.exp(-z))


def calibrate_presence(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Platt scaling: the (a, b) of sigmoid(a * logit + b) that minimize the cross-entropy to Platt's smoothed
    targets, (N+ + 1) / (N+ + 2) for images with a person and 1 / (N- + 2) for images without (so that classes
    the logit separates perfectly still give finite, not 0/1, scores), both classes weighted equally; fitted on
    validation data.

    Returns:
        {"a", "b", "n_positive", "n_negative"}.
    """
    x = torch.as_tensor(np.asarray(logits, np.float64))
    y = torch.as_tensor(np.asarray(labels, np.float64))
    n_pos, n_neg = float(y.sum()), float((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("calibration needs both images with and without a person")
    target = torch.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    weight = torch.where(y > 0.5, 0.5 / n_pos, 0.5 / n_neg)
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([params], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(
            params[0] * x + params[1], target, reduction="none")).sum()
        loss.backward()
        return loss

    opt.step(closure)
    a, b = (float(v) for v in params.detach())
    return {"a": a, "b": b, "n_positive": int(n_pos), "n_negative": int(n_neg)}


@dataclass
class Recrop:
    """The result of `recrop_until_converged` for N images.

    Attributes:
        boxes: (N, 4) the boxes of the final predictions.
        joints: (N, n, K, 2) the pose network's prediction in those boxes (every stage).
        confidence: (N, K).
        iterations: (N,) pose passes each image took.
    """

    boxes: np.ndarray
    joints: np.ndarray
    confidence: np.ndarray
    iterations: np.ndarray


def recrop_until_converged(pose: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                           boxes: np.ndarray, recrops: int = RECROPS, tol: float = TOLERANCE,
                           scale: float = BOX_SCALE) -> Recrop:
    """Predict in each box, re-crop on the prediction with the box rule, and again until the box moves by at
    most `tol` of its side or `recrops` re-crops are done (the box-level cascade).

    Args:
        pose: (indices (M,), boxes (M, 4)) -> ((M, n, K, 2) pixel joints of stages 1..n, (M, K) confidence),
            the pose network on those images' boxes.
        boxes: (N, 4) first boxes.

    Returns:
        A `Recrop`; an image whose box is already its rule's fixed point keeps it, with one pose pass.
    """
    boxes = np.array(boxes, np.float64)
    n = len(boxes)
    active = np.arange(n)
    joints, confidence = None, None
    iterations = np.zeros(n, int)
    for t in range(recrops + 1):
        j, c = pose(active, boxes[active])
        if joints is None:
            joints = np.zeros((n, *j.shape[1:]))
            confidence = np.zeros((n, *c.shape[1:]))
        joints[active], confidence[active] = j, c
        iterations[active] += 1
        if t == recrops:
            break
        new = person_box(j[:, -1], scale)
        moving = box_change(boxes[active], new) > tol
        boxes[active[moving]] = new[moving]
        active = active[moving]
        if not len(active):
            break
    return Recrop(boxes, joints, confidence, iterations)


def annotated_box(sample_box: np.ndarray | None, joints: np.ndarray, labelled: np.ndarray, dataset: str,
                  width: int, height: int) -> np.ndarray:
    """The person box a dataset's annotations give (the ceiling of localization): its own box where it has one,
    the labelled joints' box (`JOINTS_BOX_DATASETS`, scale 1.33) for whole photos without one, else the whole
    image (LSP's convention); squared, (4,) float64."""
    if sample_box is not None:
        return square_box(np.asarray(sample_box, np.float64))
    if dataset in JOINTS_BOX_DATASETS and np.asarray(labelled).any():
        return joints_box(joints, labelled, BOX_SCALE)
    return square_box(whole_image_box(width, height))
