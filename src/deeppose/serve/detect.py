"""Reading the person detector's maps (`models.detector.PersonDetector`) into people: peaks, poses, boxes, scores.

For one photo (squared, seen at S x S through the crop affine A):

1. peaks: cells whose centre logit is the largest of its 3 x 3 neighbourhood (CenterNet's max-pool
   suppression), strongest first;
2. each peak's coarse pose: joint k at cell (i, j) lies at input pixel ((j + dx_k) * stride - 0.5,
   (i + dy_k) * stride - 0.5) (MoveNet's convention: cell j is at j / grid of the input), then through A^-1 into
   the photo;
3. score: the peak's logit through the Platt scaling fitted on validation data (`localize.presence_probability`),
   the calibrated probability that a person is centred there; once the pose network has seen the person's box, the
   pipeline rescores them with its confidence too (`person_probability`);
4. box: the box rule on the coarse pose (`localize.person_box`), the box the pose network crops;
5. non-maximum suppression: a weaker person whose joints' extent overlaps a stronger one's by IoU >= `nms_iou`
   is the same person seen twice.

"Nobody here" is no person with a score at or above the threshold; the strongest candidate is kept whatever its
score, so that every photo has a best guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deeppose.geometry import invert_affine, transform_points
from deeppose.serve.localize import BOX_SCALE, iou, person_box, presence_probability

NMS_IOU = 0.6
# candidates kept for ranking (COCO's AP counts low-scoring people too); people reported: score >= the threshold
SCORE_FLOOR = 0.05
MAX_CANDIDATES = 30


@dataclass
class People:
    """The people found in one photo, best first.

    Attributes:
        boxes: (N, 4) squared person boxes (c_x, c_y, s, s), image pixels (the box rule on `joints`).
        scores: (N,) calibrated probability that each is a person from the centre logit alone
            (sigmoid(a * logit + b); where the person score also weighs the pose network's confidence, c > 0, this
            is its value at full confidence: an upper bound, which the pipeline refines once it has posed them).
        logits: (N,) the detector's raw centre logits.
        joints: (N, K, 2) the detector's coarse pose of each, image pixels.
    """

    boxes: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    joints: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, keep: np.ndarray) -> People:
        """The people at indices `keep` (ints or a mask), in that order."""
        return People(self.boxes[keep], self.scores[keep], self.logits[keep], self.joints[keep])


def person_probability(logits: np.ndarray, confidence: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """person_score = sigmoid(a * logit + c * log(mean joint confidence) + b): the finder's logit and the pose
    network's confidence in the person's box, through the logistic scaling fitted on validation data
    (`BoxRule.a, .b, .c`); c = 0 (or a model without confidences) is the logit's Platt scaling alone.

    Args:
        logits: (N,); confidence: (N, K) the pose network's joint confidences in [0, 1] (NaN: none).

    Returns:
        (N,) in [0, 1].
    """
    z = a * np.asarray(logits, np.float64) + b
    if c:
        mean = np.asarray(confidence, np.float64).mean(axis=-1)
        if np.isfinite(mean).all():
            z = z + c * np.log(np.clip(mean, 1e-4, 1.0))
    return 1.0 / (1.0 + np.exp(-z))


def centre_peaks(logits: np.ndarray, floor: float, limit: int = MAX_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of a (H, W) logit map (each the largest of its 3 x 3 neighbourhood) with logit >= `floor`,
    strongest first, at most `limit`: ((n,) rows, (n,) columns)."""
    h, w = logits.shape
    padded = np.pad(logits, 1, constant_values=-np.inf)
    neighbourhood = np.max([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    rows, cols = np.nonzero((logits >= neighbourhood) & (logits >= floor))
    order = np.argsort(-logits[rows, cols], kind="stable")[:limit]
    return rows[order], cols[order]


def peak_joints(offsets: np.ndarray, rows: np.ndarray, cols: np.ndarray, stride: int) -> np.ndarray:
    """The coarse pose at each peak, in input pixels: (2K, H, W) offsets (cells; x, y per joint) -> (n, K, 2)."""
    d = offsets[:, rows, cols].T.reshape(len(rows), -1, 2)
    cells = np.stack([cols, rows], axis=-1)[:, None, :].astype(np.float64)
    return (cells + d) * stride - 0.5


def suppress(joints: np.ndarray, scores: np.ndarray, nms_iou: float = NMS_IOU) -> np.ndarray:
    """Greedy non-maximum suppression on the joints' extents: indices kept, best first.

    Args:
        joints: (N, K, 2) coarse poses; scores: (N,).
    """
    order = np.argsort(-scores, kind="stable")
    lo, hi = joints.min(axis=1), joints.max(axis=1)
    extents = np.concatenate([(lo + hi) / 2, np.maximum(hi - lo, 1.0)], axis=1)
    keep: list[int] = []
    for i in order:
        if all(iou(extents[i], extents[k]) < nms_iou for k in keep):
            keep.append(int(i))
    return np.asarray(keep, int)


def read_people(logits: np.ndarray, offsets: np.ndarray, affine: np.ndarray, a: float, b: float,
                stride: int, box_scale: float = BOX_SCALE, floor: float = SCORE_FLOOR,
                nms_iou: float = NMS_IOU, limit: int = MAX_CANDIDATES) -> People:
    """One photo's people from the detector's maps.

    Args:
        logits: (H, W) centre logits; offsets: (2K, H, W).
        affine: (2, 3) photo pixels -> input pixels (the squared photo's crop).
        a, b: the score's Platt scaling (`BoxRule.a`, `.b`).
        floor: people with a calibrated score below it are not candidates.

    Returns:
        `People`, best first, after non-maximum suppression; at least one (the strongest peak, whatever its score).
    """
    logits = np.asarray(logits, np.float64)
    # the calibrated floor as a logit floor: sigmoid(a z + b) >= floor  <=>  z >= (logit(floor) - b) / a
    z_floor = (np.log(floor / (1 - floor)) - b) / a if a > 0 else -np.inf
    rows, cols = centre_peaks(logits, z_floor, limit)
    if not len(rows):  # the strongest peak however weak: a photo always has its best candidate
        rows, cols = centre_peaks(logits, -np.inf, 1)
    joints = transform_points(invert_affine(np.asarray(affine, np.float64)),
                              peak_joints(np.asarray(offsets, np.float64), rows, cols, stride))
    raw = logits[rows, cols]
    scores = presence_probability(raw, a, b)
    people = People(person_box(joints, box_scale), scores, raw, joints)
    return people.take(suppress(joints, scores, nms_iou))
