"""Pose on video: `deeppose predict clip.mp4 --out DIR` (or a camera index), frame by frame, everyone tracked
(`serve.track`). Output: an annotated MP4 (one colour per track) and a JSON-lines file, one object per frame with
the fields of an image's JSON plus "frame" and "time", each person with its "track_id".
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
from tqdm import tqdm

from deeppose.errors import DeepPoseError
from deeppose.files import atomic_write
from deeppose.serve.predictor import Predictor
from deeppose.serve.records import prediction_picture, prediction_record
from deeppose.serve.track import OneEuro, Tracker

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


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


def predict_video(predictor: Predictor, source: str | int, out: str | Path, smooth: OneEuro | None = None,
                  max_frames: int = 0, progress: bool = True, redetect_every: int = 10) -> dict[str, Any]:
    """Predict every frame of a video file or camera (`source`) into out/<name>.mp4 (annotated) and
    out/<name>.jsonl (a line per frame), everyone tracked (`serve.track.Tracker`: the people found again every
    `redetect_every` frames and whenever someone is lost); `smooth`: the One-Euro settings (None: the joints
    unfiltered); `max_frames` stops early (0: all; a camera runs until it stops).

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
    tracker = Tracker(predictor, smooth, redetect_every=redetect_every)
    lines, frames, started = [], 0, time.perf_counter()

    def write_video(tmp: Path) -> None:
        nonlocal frames
        writer = None
        bar = tqdm(total=max_frames or total or None, desc="frames", unit="frame", disable=not progress)
        try:
            while not max_frames or frames < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    break
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                result = tracker(frame, 1.0 / fps)
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
            "jsonl": str(jsonl), "tracks": tracker.next_id}
