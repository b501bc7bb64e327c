"""Everyone in the photo, scored as COCO scores multi-person pose: keypoint AP and AR over OKS thresholds
(pycocotools' `COCOeval`, iouType "keypoints"), on the joints a ground truth file names.

    gt = load_json("../shared/data/multi/annotations.json")
    results = coco_results(predictions, image_ids, joint_indices)
    keypoint_ap(gt, results, MULTI_SIGMAS)   # {"ap": ..., "ap50": ..., "ar": ...}

Each predicted person is scored by the mean of its joints' confidences (which carry its person score,
`serve.predictor.Person.confidence`), else its person score: COCO ranks a system's people by this score.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from deeppose.serve.predictor import Person, Prediction

# COCO's per-keypoint OKS sigmas of the 12 limb joints LSP-14 and COCO-17 share, in LSP order (data/multi's)
MULTI_SIGMAS = (0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.062, 0.072, 0.079, 0.079, 0.072, 0.062)
STATS = ("ap", "ap50", "ap75", "ap_medium", "ap_large", "ar", "ar50", "ar75", "ar_medium", "ar_large")


def person_score(person: Person) -> float:
    """The score COCO ranks a predicted person by: the mean joint confidence, else the person score, else 1."""
    if np.isfinite(person.confidence).all():
        return float(np.mean(person.confidence))
    return 1.0 if person.person_score is None else float(person.person_score)


def coco_results(predictions: Sequence[Prediction], image_ids: Sequence[int], joints: Sequence[int]
                 ) -> list[dict[str, Any]]:
    """COCO keypoint results: one per person found in each photo, its `joints` (indices into the skeleton, in the
    ground truth's keypoint order) as [x, y, 1, ...] in COCO's pixel convention (pixel centres at +0.5)."""
    out = []
    for prediction, image_id in zip(predictions, image_ids):
        for person in prediction.people:
            xy = person.joints[list(joints)] + 0.5
            keypoints = np.concatenate([xy, np.ones((len(xy), 1))], axis=1).ravel()
            out.append({"image_id": int(image_id), "category_id": 1, "keypoints": keypoints.tolist(),
                        "score": person_score(person)})
    return out


def keypoint_ap(gt: dict[str, Any], results: list[dict[str, Any]], sigmas: Sequence[float]) -> dict[str, float]:
    """COCO keypoint AP/AR of `results` against the ground truth `gt` (a COCO keypoints dict), with per-keypoint
    OKS `sigmas`: {"ap", "ap50", "ap75", "ap_medium", "ap_large", "ar", ...}; 0 everywhere for no results."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints as it goes
        truth = COCO()
        truth.dataset = {**gt, "annotations": [dict(a) for a in gt["annotations"]]}
        truth.createIndex()
        if not results:
            return dict.fromkeys(STATS, 0.0)
        evaluation = COCOeval(truth, truth.loadRes(results), "keypoints")
        evaluation.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: max(float(v), 0.0) for name, v in zip(STATS, evaluation.stats)}
