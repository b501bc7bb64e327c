"""FLIC (Frames Labeled In Cinema): `root/examples.mat` and `root/images/`.

`examples` is a 1 x N MATLAB struct array with fields `coords` (2 x 29, NaN for the slots FLIC does not
annotate), `filepath`, `istrain`, `istest` and `torsobox` ([x1 y1 x2 y2]). Only 11 slots are annotated
(see `skeleton.FLIC_SLOTS`). The sample box is FLIC's torso box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeppose.data.collect import OnBad, SampleCollector
from deeppose.data.io import load_mat, require_dir
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.skeleton import FLIC11, FLIC_SLOTS


def load_flic(root: str | Path, split: str = "train", on_bad: OnBad = "error") -> PoseDataset:
    """Load FLIC's `examples.mat`; split "train" (istrain), "test" (istest) or "all"."""
    root = require_dir(root, "FLIC folder")
    if split not in ("train", "test", "all"):
        raise DeepPoseError(root, f"unknown FLIC split {split!r} (train, test, all)")
    mat_path = root / "examples.mat"
    mat = load_mat(mat_path, squeeze_me=True, struct_as_record=False)
    if "examples" not in mat:
        raise DeepPoseError(mat_path, "no variable 'examples'")
    examples = np.atleast_1d(mat["examples"])
    collector = SampleCollector(on_bad, mat_path)
    for k, ex in enumerate(examples):
        try:
            coords = np.asarray(ex.coords, dtype=np.float64)
            filepath = str(ex.filepath)
            use = {"train": bool(ex.istrain), "test": bool(ex.istest), "all": True}[split]
            torso = np.asarray(ex.torsobox, dtype=np.float64).reshape(-1)
        except AttributeError as exc:
            raise DeepPoseError(mat_path, f"example {k}: missing field ({exc})") from None
        if coords.shape != (2, 29) or torso.shape != (4,):
            raise DeepPoseError(mat_path, f"example {k}: expected coords 2x29 and torsobox 4, got {coords.shape}, "
                                          f"{torso.shape}")
        if not use:
            continue
        joints = coords[:, FLIC_SLOTS].T
        labelled = np.isfinite(joints).all(axis=1)
        x1, y1, x2, y2 = torso
        box = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        collector.add(root / "images" / filepath, joints, labelled, labelled, box, image_id=Path(filepath).stem)
    return collector.finish("flic", root, split, FLIC11)
