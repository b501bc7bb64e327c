"""Everyone across the frames of a video: tracks with stable ids, each person's box carried from frame to frame,
the people found again regularly, and the joints smoothed per track.

Each frame (`Tracker.__call__`):

- carried: every live track's box follows from its previous raw joints by the box rule
  (`serve.localize.person_box`), the pose network runs in all of them in one batch, and the finder scores each crop
  (box_source "tracked");
- found again, as a photo is (`Predictor.predict`): on the first frame, every `redetect_every` frames, and as soon
  as a carried person's score falls below the threshold (lost) or a carried box leaves the frame. The people found
  are matched to the tracks by box IoU (greedy, largest overlap first, at least `min_iou`) with the box each track
  is expected at (its last box moved on at its velocity, so that people who cross keep their ids); a person no
  track matches starts a new one; a track nobody matches waits `max_missed` frames for its person, then ends.

Joints are smoothed per track by a One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): a low-pass filter whose
cut-off frequency rises with the speed of the signal, so that a still pose stops jittering and a fast movement does
not lag. The next crop follows the raw pose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from deeppose.errors import DeepPoseError
from deeppose.geometry import centre_box, corner_box
from deeppose.serve.localize import iou, person_box
from deeppose.serve.predictor import Person, Prediction, Predictor

MIN_IOU = 0.3
REDETECT_EVERY = 10
MAX_MISSED = 15


@dataclass
class OneEuro:
    """One-Euro filter settings (Casiez et al. 2012).

    Attributes:
        min_cutoff: cut-off frequency (Hz) of a still signal: lower smooths more (and lags more when slow).
        beta: how fast the cut-off rises with the signal's speed (per pixel/s): higher follows fast moves closer.
        d_cutoff: cut-off (Hz) of the speed estimate itself.
    """

    min_cutoff: float = 1.0
    beta: float = 0.01
    d_cutoff: float = 1.0


def smoothing_factor(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    """alpha = 1 / (1 + tau / dt), tau = 1 / (2 pi f_c): the exponential filter's weight of a new sample."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """A One-Euro filter over arrays (e.g. (K, 2) joints): `__call__(x, dt)` -> the filtered x; NaN entries are
    passed through and restart their own filter."""

    def __init__(self, settings: OneEuro | None = None) -> None:
        self.s = settings or OneEuro()
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def __call__(self, x: np.ndarray, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or self.x.shape != x.shape or dt <= 0:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        fresh = ~np.isfinite(self.x)
        prev = np.where(fresh, x, self.x)
        dx = (x - prev) / dt
        a_d = smoothing_factor(self.s.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = smoothing_factor(self.s.min_cutoff + self.s.beta * np.abs(self.dx), dt)
        out = a * x + (1 - a) * prev
        self.x = np.where(np.isfinite(x), out, x)
        return self.x.copy()


def match_boxes(previous: np.ndarray, current: np.ndarray, min_iou: float = MIN_IOU) -> dict[int, int]:
    """Greedy matching by IoU, largest overlap first: {current index: previous index} for pairs overlapping by at
    least `min_iou`, each box used once.

    Args:
        previous, current: (N, 4) and (M, 4) boxes (c_x, c_y, w, h).
    """
    if not len(previous) or not len(current):
        return {}
    overlap = iou(np.asarray(current)[:, None], np.asarray(previous)[None])
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(-overlap, axis=None, kind="stable"):
        i, j = divmod(int(flat), overlap.shape[1])
        if overlap[i, j] < min_iou:
            break
        if i not in pairs and j not in used:
            pairs[i] = j
            used.add(j)
    return pairs


@dataclass
class Track:
    """One person followed across frames: the last raw (unsmoothed) pose, the frame it was seen in, its box
    centre's velocity (pixels per frame) and the joints' filter."""

    person: Person
    seen: int
    velocity: np.ndarray
    smoother: OneEuroFilter | None

    def expected_box(self, frame: int) -> np.ndarray:
        """(4,) where its box (c_x, c_y, w, h) should be at `frame`, moving on at its velocity."""
        box = centre_box(*self.person.box)
        box[:2] += self.velocity * (frame - self.seen)
        return box


class Tracker:
    """Everyone in a video, frame after frame (see the module doc).

    Args:
        predictor: the pipeline run on each frame.
        smooth: the One-Euro settings (None: the joints unfiltered).
        redetect_every: find the people afresh every this many frames (1: every frame).
        min_iou: a person found continues a track whose expected box overlaps theirs by at least this.
        max_missed: a track nobody continues waits this many frames (unseen, moving on at its velocity) for its
            person to be found again (people crossing hide one another), then ends.
    """

    def __init__(self, predictor: Predictor, smooth: OneEuro | None = None, redetect_every: int = REDETECT_EVERY,
                 min_iou: float = MIN_IOU, max_missed: int = MAX_MISSED) -> None:
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1, got {redetect_every}")
        self.predictor = predictor
        self.smooth = smooth
        self.redetect_every = redetect_every
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}
        self.next_id = 0
        self.frames = 0

    def visible(self) -> list[int]:
        """The tracks seen in the previous frame (the ones carried)."""
        return [t for t, track in self.tracks.items() if track.seen == self.frames - 1]

    def carry(self, frame: np.ndarray) -> dict[int, Person] | None:
        """The visible tracks' people in this frame, each in its carried box; None when one is lost or its box
        left the frame (then the people are found afresh)."""
        ids = self.visible()
        if not ids:
            return None
        scale = self.predictor.box_rule.box_scale
        boxes = [corner_box(person_box(self.tracks[t].person.joints, scale)) for t in ids]
        try:
            results = self.predictor.predict_images([frame] * len(ids), boxes)
        except DeepPoseError:  # a carried box left the frame
            return None
        if any(r.person_found is False for r in results):
            return None
        return {t: replace(r.best, box_source="tracked") for t, r in zip(ids, results)}

    def detect(self, frame: np.ndarray) -> tuple[dict[int, Person], Prediction]:
        """The people found afresh, each given the id of the track expected where they are (`match_boxes`) or a
        new one."""
        result = self.predictor.predict(frame)
        ids = list(self.tracks)
        expected = np.array([self.tracks[t].expected_box(self.frames) for t in ids]).reshape(-1, 4)
        current = np.array([centre_box(*p.box) for p in result.people]).reshape(-1, 4)
        pairs = match_boxes(expected, current, self.min_iou)
        people: dict[int, Person] = {}
        for i, person in enumerate(result.people):
            if i in pairs:
                people[ids[pairs[i]]] = person
            else:
                people[self.next_id] = person
                self.next_id += 1
        return people, result

    def update(self, people: dict[int, Person]) -> None:
        """Record this frame's people in their tracks (velocity, last pose); end tracks unseen too long."""
        for t, person in people.items():
            old = self.tracks.get(t)
            if old is None:
                self.tracks[t] = Track(person, self.frames, np.zeros(2),
                                       OneEuroFilter(self.smooth) if self.smooth else None)
                continue
            step = (centre_box(*person.box)[:2] - centre_box(*old.person.box)[:2]) / max(self.frames - old.seen, 1)
            self.tracks[t] = Track(person, self.frames, 0.5 * old.velocity + 0.5 * step, old.smoother)
        self.tracks = {t: track for t, track in self.tracks.items() if self.frames - track.seen <= self.max_missed}

    def __call__(self, frame: np.ndarray, dt: float) -> Prediction:
        """One RGB frame, `dt` seconds after the previous one -> its `Prediction`, each person with its
        `track_id` and smoothed joints, best first."""
        due = self.frames % self.redetect_every == 0
        people = None if due else self.carry(frame)
        found = None
        if people is None:
            people, found = self.detect(frame)
        self.update(people)
        self.frames += 1
        shown = []
        for t, person in people.items():
            smoother = self.tracks[t].smoother
            joints = person.joints if smoother is None else smoother(person.joints, dt)
            shown.append(replace(person, joints=joints, track_id=t))
        shown.sort(key=lambda p: -1.0 if p.person_score is None else -p.person_score)
        if found is not None and not shown:  # nobody: the frame's best candidate, as a photo's
            return replace(found, people=[])
        anyone = None if self.predictor.finder is None else bool(shown)
        return Prediction(shown, shown[0], anyone)
