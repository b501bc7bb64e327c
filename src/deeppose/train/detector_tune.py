"""After the detector is trained: choose its box rule, and fit its person score with the pose network behind it.

Each reads a detector checkpoint and writes another (`deeppose detector tune|calibrate`); the data are the training
run's own held-out splits (`train.detector.detector_splits`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeppose.data.io import read_image
from deeppose.models.checkpoint import model_from_checkpoint, save_checkpoint
from deeppose.models.detector import PersonDetector
from deeppose.models.meta import BoxRule, ModelMeta
from deeppose.serve.localize import FOUND_THRESHOLD
from deeppose.train.detector import detector_and_splits


def top_candidates(detector: PersonDetector, meta: ModelMeta, pose: str | Path, photos: list[Path],
                   batch_size: int = 32) -> np.ndarray:
    """Each photo's strongest candidate as the pipeline scores it: (N, 2) [the detector's centre logit, the pose
    network's mean joint confidence in that person's box after the box rule's re-crops] (`serve.detect`'s
    `person_probability` features)."""
    from deeppose.serve.backend import TorchNetworks
    from deeppose.serve.finder import DetectorFinder
    from deeppose.serve.localize import RECROPS, TOLERANCE, recrop_until_converged
    from deeppose.serve.pose import PoseStage
    from deeppose.skeleton import get_skeleton

    pose_model, pose_meta = model_from_checkpoint(pose)
    networks = TorchNetworks(pose_model, detector)
    finder = DetectorFinder(networks, meta)
    rule = finder.rule
    stage = PoseStage(networks, get_skeleton(pose_meta.skeleton), pose_meta.input_size,
                      pose_meta.cascade.source_size if pose_meta.kind == "cascade" else None)
    out = []
    for lo in range(0, len(photos), 100):
        images = [read_image(p) for p in photos[lo:lo + 100]]
        top = [people.take([0]) for people in finder(images, batch_size=batch_size)]
        r = recrop_until_converged(lambda idx, b, ims=images: stage([ims[i] for i in idx], b, batch_size),
                                   np.concatenate([t.boxes for t in top]),
                                   RECROPS if rule.recrops is None else rule.recrops, TOLERANCE, rule.box_scale)
        out.append(np.stack([np.concatenate([t.logits for t in top]), r.confidence.mean(axis=1)], axis=1))
    return np.concatenate(out)


def fit_person_score(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The logistic scaling person_score = sigmoid(a * logit + c * log(confidence) + b) that minimizes the
    cross-entropy to the labels (1: a photo of people, 0: a photo with nobody), both classes weighted equally.

    Args:
        features: (N, 2) [logit, mean joint confidence]; labels: (N,).
    """
    x = torch.as_tensor(np.stack([features[:, 0], np.log(np.clip(features[:, 1], 1e-4, 1.0))], axis=1))
    y = torch.as_tensor(np.asarray(labels, np.float64))
    n_pos, n_neg = float(y.sum()), float((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("calibration needs photos with and without people")
    weight = torch.where(y > 0.5, 0.5 / n_pos, 0.5 / n_neg)
    params = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64, requires_grad=True)  # a, c, b
    opt = torch.optim.LBFGS([params], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(
            x @ params[:2] + params[2], y, reduction="none")).sum()
        loss.backward()
        return loss

    opt.step(closure)
    a, c, b = (float(v) for v in params.detach())
    return {"a": a, "b": b, "c": c, "n_positive": int(n_pos), "n_negative": int(n_neg)}


def calibrate_detector(checkpoint: str | Path, pose: str | Path, out: str | Path, root: str | Path | None = None
                       ) -> dict[str, Any]:
    """Fit the person score (`fit_person_score`: the detector's logit and the `pose` network's confidence) on the
    training run's held-out photos, each photo's strongest candidate (`top_candidates`): LSP val and LSPET val
    with people, the held-out photos with nobody without, and write the detector with it to `out`.

    Returns:
        {"a", "b", "c", "n_positive", "n_negative", "false_negatives": share of the held-out photos of people where
        nobody scores >= 0.5, "false_positives": share of the held-out photos with nobody where someone does}.
    """
    model, meta, people, nobody = detector_and_splits(checkpoint, root)
    with_people = [s.image_path for name in ("lsp_val", "lspet_val") for s in people[name].samples]
    features = np.concatenate([top_candidates(model, meta, pose, with_people),
                               top_candidates(model, meta, pose, nobody["val"])])
    labels = np.concatenate([np.ones(len(with_people)), np.zeros(len(nobody["val"]))])
    cal = fit_person_score(features, labels)
    from deeppose.serve.detect import person_probability

    found = person_probability(features[:, 0], features[:, 1:], cal["a"], cal["b"], cal["c"]) >= FOUND_THRESHOLD
    cal.update(false_negatives=float((~found[labels > 0]).mean()), false_positives=float(found[labels == 0].mean()))
    rule = replace(meta.box_rule or BoxRule(), a=cal["a"], b=cal["b"], c=cal["c"])
    save_checkpoint(out, model, replace(meta, box_rule=rule).with_provenance(
        calibration={**cal, "pose": Path(pose).name, "data": "lsp:val, lspet:val, negatives:val"}))
    return cal


def tune_detector(detector: str | Path, pose: str | Path, out: str | Path,
                  scales: tuple[float, ...] = (1.2, 1.33, 1.5), recrops: tuple[int, ...] = (0, 1, 2),
                  root: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Choose the detector's box rule (`train.localizer_tune.choose_box_rule`: LSP val and LSPET val, the person
    found that the annotated one is) and write it into the detector checkpoint `out`."""
    from deeppose.train.localizer_tune import choose_box_rule

    model, meta, people, _ = detector_and_splits(detector, root)
    return choose_box_rule(model, meta, pose, people, out, scales, recrops, progress)
