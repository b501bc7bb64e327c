"""The one sample type every loader produces, and the dataset container that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deeppose.errors import DeepPoseError
from deeppose.skeleton import Skeleton


@dataclass(frozen=True)
class Sample:
    """One annotated person.

    Attributes:
        image_path: the image file.
        joints: (K, 2) float32 (x, y) in image pixels; meaningless where not `labelled` (set to 0).
        labelled: (K,) bool, the joint has a real coordinate (losses and metrics use this).
        visible: (K,) bool, the joint is labelled and not occluded.
        box: (4,) float32 person box (c_x, c_y, w, h) in pixels, or None (then the whole image is used).
        image_id: a short identifier for messages and reports (e.g. "im1001").
    """

    image_path: Path
    joints: np.ndarray
    labelled: np.ndarray
    visible: np.ndarray
    box: np.ndarray | None = None
    image_id: str = ""


@dataclass(frozen=True)
class Skipped:
    """A sample left out by a loader running with on_bad="skip", and why."""

    path: str
    reason: str


@dataclass
class PoseDataset:
    """A list of samples of one skeleton, plus what was skipped while loading.

    Attributes:
        name: loader name ("lsp", "lspet", "mpii", "coco", "flic", "custom", "synthetic").
        root: the folder or annotation file it was loaded from.
        split: "train", "test", "all", ...
        skeleton: joint layout of every sample.
        samples: the samples, in annotation order.
        skipped: samples dropped because of bad input (only with on_bad="skip").
    """

    name: str
    root: Path
    split: str
    skeleton: Skeleton
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def joints(self) -> np.ndarray:
        """(N, K, 2) float32 joints of all samples."""
        return np.stack([s.joints for s in self.samples]).astype(np.float32)

    def labelled(self) -> np.ndarray:
        """(N, K) bool."""
        return np.stack([s.labelled for s in self.samples])

    def visible(self) -> np.ndarray:
        """(N, K) bool."""
        return np.stack([s.visible for s in self.samples])

    def subset(self, indices: list[int] | np.ndarray, split: str) -> PoseDataset:
        """A new dataset holding samples[indices] under another split name (e.g. a validation carve-out)."""
        return PoseDataset(self.name, self.root, split, self.skeleton, [self.samples[int(i)] for i in indices])


def make_sample(image_path: Path, joints: np.ndarray, labelled: np.ndarray, visible: np.ndarray,
                box: np.ndarray | None, image_id: str, source: str | Path) -> Sample:
    """Validate and build a Sample; raise DeepPoseError naming `source` when the annotation is unusable.

    NaN or infinite coordinates are an error for a labelled joint; unlabelled joints are zeroed.
    """
    joints = np.asarray(joints, dtype=np.float64)
    labelled = np.asarray(labelled, dtype=bool)
    visible = np.asarray(visible, dtype=bool) & labelled
    if joints.ndim != 2 or joints.shape[1] != 2 or labelled.shape != (joints.shape[0],):
        raise DeepPoseError(source, f"{image_id}: expected joints (K, 2) and flags (K,), got {joints.shape} and "
                                    f"{labelled.shape}")
    bad = labelled & ~np.isfinite(joints).all(axis=1)
    if bad.any():
        raise DeepPoseError(source, f"{image_id}: NaN or infinite coordinate for labelled joint(s) "
                                    f"{np.flatnonzero(bad).tolist()}")
    joints = np.where(labelled[:, None], joints, 0.0).astype(np.float32)
    if box is not None:
        box = np.asarray(box, dtype=np.float32)
        if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
            raise DeepPoseError(source, f"{image_id}: invalid person box {box.tolist()} (need cx, cy, w > 0, h > 0)")
    return Sample(Path(image_path), joints, labelled, visible, box, image_id)
