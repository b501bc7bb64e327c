"""Pose on video: `deeppose predict clip.mp4 --out DIR` (or a camera index), frame by frame, the person tracked.

The first frame, and any frame after the person was lost, is localized as a photo is (`Predictor.predict`). On
the next frames the box is carried: the previous frame's joints give the crop by the box rule (`person_box`), one
pose pass per frame, and the localizer's presence score on that crop says whether the person is still there.
Joints are smoothed over time by a One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): a low-pass filter whose
cut-off frequency rises with the speed of the signal, so that a still pose stops jittering and a fast movement
does not lag. Output: an annotated MP4 and a JSON-lines file, one object per frame with the fields of an image's
JSON plus "frame" and "time".
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from deeppose.errors import DeepPoseError
from deeppose.files import atomic_write
from deeppose.geometry import corner_box
from deeppose.serve.localize import FOUND_THRESHOLD, person_box
from deeppose.serve.predictor import Prediction, Predictor
from deeppose.serve.records import prediction_picture, prediction_record

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


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


def open_video(source: str | int) -> cv2.VideoCapture:
    """An OpenCV capture of a file, a stream URL (rtsp://, http://...) or a camera index; DeepPoseError naming it
    when it cannot be read."""
    if isinstance(source, str) and "://" not in source and not Path(source).is_file():
        raise DeepPoseError(source, "no such video file")
    capture = cv2.VideoCapture(source)
    ok, _ = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise DeepPoseError(source, "not a readable video (no frame could be decoded)")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return capture


def track_frame(predictor: Predictor, frame: np.ndarray, previous: Prediction | None) -> Prediction:
    """The pose in one RGB frame: the box carried from the previous frame's joints while the person is there
    (box_source "tracked"), else the person found afresh ("found")."""
    if previous is None or previous.person_found is False:
        return predictor.predict(frame)
    box = corner_box(person_box(previous.joints, predictor.box_rule.box_scale))
    try:
        carried = predictor.predict(frame, box)
    except DeepPoseError:  # the carried box left the frame: look again
        return predictor.predict(frame)
    if carried.person_score is not None and carried.person_score < FOUND_THRESHOLD:
        return predictor.predict(frame)  # lost: look again
    return replace(carried, box_source="tracked")


def predict_video(predictor: Predictor, source: str | int, out: str | Path, smooth: OneEuro | None = None,
                  max_frames: int = 0, progress: bool = True) -> dict[str, Any]:
    """Predict every frame of a video file or camera (`source`) into out/<name>.mp4 (annotated) and
    out/<name>.jsonl (a line per frame); `smooth`: the One-Euro settings (None: the joints unfiltered);
    `max_frames` stops early (0: all; a camera runs until it stops).

    Returns:
        {"frames", "fps", "seconds", "mp4", "jsonl"}.
    """
    capture = open_video(source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    is_file = isinstance(source, str) and "://" not in source
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if is_file else 0
    name = Path(source).stem if is_file else "stream" if isinstance(source, str) else f"camera{source}"
    out = Path(out)
    mp4, jsonl = out / f"{name}.mp4", out / f"{name}.jsonl"
    filt = OneEuroFilter(smooth) if smooth else None
    lines, frames, previous, started = [], 0, None, time.perf_counter()

    def write_video(tmp: Path) -> None:
        nonlocal frames, previous
        writer = None
        bar = tqdm(total=max_frames or total or None, desc="frames", unit="frame", disable=not progress)
        try:
            while not max_frames or frames < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    break
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                previous = track_frame(predictor, frame, previous)  # the next crop follows the raw pose
                result = previous if filt is None else replace(previous, joints=filt(previous.joints, 1.0 / fps))
                if writer is None:
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (frame.shape[1], frame.shape[0]))
                picture = prediction_picture(frame, result, predictor.skeleton)
                writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
                lines.append(json.dumps({"frame": frames, "time": round(frames / fps, 4),
                                         **prediction_record(result, predictor, frame)}))
                frames += 1
                bar.update(1)
                bar.set_postfix(fps=f"{frames / (time.perf_counter() - started):.1f}")
        finally:
            bar.close()
            capture.release()
            if writer is not None:
                writer.release()

    atomic_write(mp4, write_video)
    atomic_write(jsonl, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))
    seconds = time.perf_counter() - started
    return {"frames": frames, "fps": round(frames / seconds, 2), "seconds": round(seconds, 2), "mp4": str(mp4),
            "jsonl": str(jsonl)}
