"""Pose metrics as pure functions on arrays: PCP (strict/loose), PDJ/PCK curves with AUC, PCKh.

Inputs are `pred`, `gt`: (N, K, 2) pixels and `labelled`: (N, K) bool (the ground truth joint has a real
coordinate). The protocols score every labelled joint (on LSP all 14, occluded ones included). A
non-finite prediction counts as a miss. Every result says how many joints/limbs and images it scored.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from deeppose.geometry import diam
from deeppose.skeleton import Skeleton

# The four limb groups of DeepPose's Table 1, whose mean is the "mean" PCP column.
TABLE1_GROUPS = ("upper_arm", "lower_arm", "upper_leg", "lower_leg")
DEFAULT_ALPHAS = np.round(np.linspace(0.0, 0.5, 51), 4)


def _check(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, gt, labelled = np.asarray(pred, np.float64), np.asarray(gt, np.float64), np.asarray(labelled, bool)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred and gt must both be (N, K, 2), got {pred.shape} and {gt.shape}")
    if labelled.shape != gt.shape[:2]:
        raise ValueError(f"labelled must be (N, K) = {gt.shape[:2]}, got {labelled.shape}")
    if pred.shape[0] == 0:
        raise ValueError("no images to score (N = 0)")
    return pred, gt, labelled


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, K) Euclidean distances in pixels; +inf where the prediction is not finite."""
    err = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
    return np.where(np.isfinite(err), err, np.inf)


def pdj(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, skeleton: Skeleton,
        alphas: np.ndarray = DEFAULT_ALPHAS) -> dict:
    """Percent of Detected Joints (DeepPose) = PCK normalized by the torso diameter, as curves over alpha.

    A joint is detected when its error <= alpha * diam(y_gt), diam from the ground truth (right shoulder
    to left hip, the other diagonal when one of those is unlabelled). Images where neither diagonal is
    labelled are left out and counted in "n_images_excluded".

    Returns:
        dict with "alphas" (A,), "per_joint" {name: (A,) list}, "mean" (A,) list over all scored joints,
        "auc" (area under the mean curve divided by the alpha range, in [0, 1]), "pck" {alpha: value} at
        0.05/0.1/0.15/0.2/0.5, "n_joints", "n_images", "n_images_excluded", "n_joints_per_joint".
    """
    pred, gt, labelled = _check(pred, gt, labelled)
    alphas = np.asarray(alphas, np.float64)
    d = diam(gt, labelled, skeleton)
    usable = np.isfinite(d) & (d > 0)
    scored = labelled & usable[:, None]
    rel = joint_errors(pred, gt) / np.where(usable, d, 1.0)[:, None]
    hits = rel[None] <= alphas[:, None, None]  # (A, N, K)
    n_per_joint = scored.sum(axis=0)
    per_joint = (hits & scored[None]).sum(axis=1) / np.maximum(n_per_joint, 1)
    n = int(scored.sum())
    mean = (hits & scored[None]).sum(axis=(1, 2)) / max(n, 1)
    auc = float(np.trapezoid(mean, alphas) / (alphas[-1] - alphas[0])) if len(alphas) > 1 else float(mean[0])
    pck = {}
    for a in (0.05, 0.1, 0.15, 0.2, 0.5):
        pck[f"{a:g}"] = float(((rel <= a) & scored).sum() / max(n, 1))
    return {
        "alphas": alphas.tolist(),
        "per_joint": {name: per_joint[:, k].tolist() for k, name in enumerate(skeleton.joints)},
        "mean": mean.tolist(),
        "auc": auc,
        "pck": pck,
        "n_joints": n,
        "n_images": int(usable.sum()),
        "n_images_excluded": int((~usable).sum()),
        "n_joints_per_joint": {name: int(n_per_joint[k]) for k, name in enumerate(skeleton.joints)},
    }


def pck(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, skeleton: Skeleton, alpha: float = 0.2) -> float:
    """PCK@alpha of the torso diameter (PDJ at one alpha) over all scored joints."""
    return float(pdj(pred, gt, labelled, skeleton, np.array([alpha]))["mean"][0])


def _endpoint(y: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    return y[:, list(idx)].mean(axis=1)


def pcp(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, skeleton: Skeleton, strict: bool = True,
        threshold: float = 0.5) -> dict:
    """Percentage of Correct Parts.

    A limb is correct when both predicted endpoints lie within threshold * (true limb length) of the true
    endpoints ("strict"); "loose" compares the mean of the two endpoint errors instead. A limb is scored
    when all its joints are labelled in the ground truth.

    Returns:
        dict with "per_limb" {name: fraction}, "per_group" {group: fraction pooled over its limbs}, "mean"
        (the mean of the Table 1 groups present: upper/lower arm/leg), "n_limbs" {name: count scored},
        "n_images", "mode".
    """
    pred, gt, labelled = _check(pred, gt, labelled)
    correct: dict[str, np.ndarray] = {}
    scored: dict[str, np.ndarray] = {}
    for limb in skeleton.limbs:
        ga, gb = _endpoint(gt, limb.a), _endpoint(gt, limb.b)
        pa, pb = _endpoint(pred, limb.a), _endpoint(pred, limb.b)
        length = np.linalg.norm(ga - gb, axis=-1)
        ea, eb = joint_errors(pa[:, None], ga[:, None])[:, 0], joint_errors(pb[:, None], gb[:, None])[:, 0]
        ok = np.maximum(ea, eb) <= threshold * length if strict else (ea + eb) / 2 <= threshold * length
        scored[limb.name] = labelled[:, list(limb.a) + list(limb.b)].all(axis=1)
        correct[limb.name] = ok & scored[limb.name]
    per_limb = {k: float(correct[k].sum() / max(scored[k].sum(), 1)) for k in correct}
    per_group = {}
    for group in skeleton.pcp_groups():
        names = [limb.name for limb in skeleton.limbs if limb.group == group]
        n = sum(int(scored[k].sum()) for k in names)
        per_group[group] = float(sum(int(correct[k].sum()) for k in names) / max(n, 1))
    table = [per_group[g] for g in TABLE1_GROUPS if g in per_group]
    return {
        "per_limb": per_limb,
        "per_group": per_group,
        "mean": float(np.mean(table)) if table else float("nan"),
        "n_limbs": {k: int(v.sum()) for k, v in scored.items()},
        "n_images": int(pred.shape[0]),
        "mode": "strict" if strict else "loose",
    }


def pckh(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, skeleton: Skeleton, threshold: float = 0.5) -> dict:
    """PCKh@threshold: a joint is correct when its error <= threshold * (true head segment length).

    The head segment is the skeleton's `head` pair (MPII: upper neck to head top; LSP: neck to head top).
    Images whose head segment is unlabelled or of zero length are left out and counted.

    Returns:
        dict with "pckh", "per_joint" {name: fraction}, "n_joints", "n_images", "n_images_excluded".
    """
    if skeleton.head is None:
        raise ValueError(f"skeleton {skeleton.name} has no head segment; PCKh is undefined")
    pred, gt, labelled = _check(pred, gt, labelled)
    a, b = skeleton.head
    head = np.linalg.norm(gt[:, a] - gt[:, b], axis=-1)
    usable = labelled[:, a] & labelled[:, b] & (head > 0)
    scored = labelled & usable[:, None]
    ok = (joint_errors(pred, gt) <= threshold * head[:, None]) & scored
    n_per_joint = scored.sum(axis=0)
    return {
        "pckh": float(ok.sum() / max(scored.sum(), 1)),
        "per_joint": {name: float(ok[:, k].sum() / max(n_per_joint[k], 1)) for k, name in enumerate(skeleton.joints)},
        "n_joints": int(scored.sum()),
        "n_images": int(usable.sum()),
        "n_images_excluded": int((~usable).sum()),
    }


def confidence_report(pred: np.ndarray, confidence: np.ndarray, gt: np.ndarray, labelled: np.ndarray,
                      skeleton: Skeleton, alpha: float = 0.2, keep: tuple[float, ...] = (1.0, 0.9, 0.75, 0.5)
                      ) -> dict | None:
    """How well per-joint confidences tell right joints (within alpha of the torso diameter) from wrong ones.

    Args:
        pred, gt: (N, K, 2) pixels; confidence: (N, K); labelled: (N, K) bool.

    Returns:
        None when the model has no confidence (all NaN); else {"auroc": the probability that a right joint
        has a higher confidence than a wrong one (ties count half), "pck_of_most_confident": {fraction kept:
        PCK@alpha of that most confident fraction of the scored joints}, "threshold_at": {fraction kept: the
        confidence that keeps it}, "alpha", "n_joints"}.
    """
    pred, gt, labelled = _check(pred, gt, labelled)
    confidence = np.asarray(confidence, np.float64)
    if confidence.shape != labelled.shape:
        raise ValueError(f"confidence must be (N, K) = {labelled.shape}, got {confidence.shape}")
    if np.isnan(confidence).all():
        return None
    d = diam(gt, labelled, skeleton)
    usable = np.isfinite(d) & (d > 0)
    scored = labelled & usable[:, None] & np.isfinite(confidence)
    right = (joint_errors(pred, gt) <= alpha * np.where(usable, d, np.nan)[:, None])[scored]
    c = confidence[scored]
    if len(c) == 0:
        raise ValueError("no joints with a finite confidence to score")
    ranks = rankdata(c)  # ties share their mean rank (Mann-Whitney)
    n_right, n_wrong = int(right.sum()), int((~right).sum())
    auroc = ((ranks[right].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong)
             if n_right and n_wrong else float("nan"))
    order = np.argsort(-c, kind="stable")
    out: dict = {"alpha": alpha, "n_joints": int(len(c)), "auroc": float(auroc), "pck_of_most_confident": {},
                 "threshold_at": {}}
    for f in keep:
        n = max(1, int(round(f * len(c))))
        out["pck_of_most_confident"][f"{f:g}"] = float(right[order[:n]].mean())
        out["threshold_at"][f"{f:g}"] = float(c[order[n - 1]])
    return out

