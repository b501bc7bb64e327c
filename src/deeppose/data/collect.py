"""Shared loader plumbing: validate each annotation, skip or fail on bad ones, refuse empty splits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from deeppose.data.sample import PoseDataset, Sample, Skipped, make_sample
from deeppose.errors import DeepPoseError
from deeppose.skeleton import Skeleton

OnBad = Literal["error", "skip"]


class SampleCollector:
    """Accumulates validated samples for one loader call.

    With on_bad="error" the first bad annotation (missing image, NaN coordinate, bad box) raises
    DeepPoseError; with on_bad="skip" it is recorded in `PoseDataset.skipped` and counted, never dropped
    silently.
    """

    def __init__(self, on_bad: OnBad, source: str | Path) -> None:
        if on_bad not in ("error", "skip"):
            raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
        self.on_bad = on_bad
        self.source = source
        self.samples: list[Sample] = []
        self.skipped: list[Skipped] = []

    def add(self, image_path: Path, joints: np.ndarray, labelled: np.ndarray, visible: np.ndarray,
            box: np.ndarray | None = None, image_id: str = "") -> None:
        try:
            if not image_path.is_file():
                raise DeepPoseError(image_path, "image file not found")
            sample = make_sample(image_path, joints, labelled, visible, box, image_id or image_path.stem,
                                 self.source)
        except DeepPoseError as err:
            if self.on_bad == "error":
                raise
            self.skipped.append(Skipped(err.path or str(self.source), err.problem))
            return
        self.samples.append(sample)

    def finish(self, name: str, root: Path, split: str, skeleton: Skeleton) -> PoseDataset:
        if not self.samples:
            detail = f" ({len(self.skipped)} skipped as bad)" if self.skipped else ""
            raise DeepPoseError(self.source, f"split {split!r} of {name} has no samples{detail}")
        return PoseDataset(name, Path(root), split, skeleton, self.samples, self.skipped)
