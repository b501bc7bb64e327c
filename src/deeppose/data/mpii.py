"""MPII Human Pose in the common json layout (as used by HRNet / mmpose).

Each entry: `image` (file name under `images/`), `center` [x, y], `scale` (person height / 200 px),
`joints` (16 x [x, y]) and `joints_vis` (16 x 0/1). `joints_vis` says whether a joint is annotated; this
format drops MPII's occlusion flag, so visible == labelled here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeppose.data.collect import OnBad, SampleCollector
from deeppose.data.io import load_json, require_dir
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.skeleton import MPII16

# MPII's person scale is the person height in units of 200 px.
MPII_SCALE_PX = 200.0


def _annotation_file(root: Path, split: str) -> Path:
    for name in (f"{split}.json", f"mpii_{split}.json", "annotations.json"):
        if (root / name).is_file():
            return root / name
    raise DeepPoseError(root, f"no MPII annotation file ({split}.json or annotations.json)")


def load_mpii(root: str | Path, split: str = "all", on_bad: OnBad = "error") -> PoseDataset:
    """Load MPII from `root/<split>.json` (or `root/annotations.json`) and `root/images/`.

    The person box is (center, 200 * scale, 200 * scale); the head segment (upper neck to head top) is
    what PCKh normalizes by.
    """
    root = require_dir(root, "MPII folder")
    ann_path = _annotation_file(root, split)
    entries = load_json(ann_path)
    if not isinstance(entries, list):
        raise DeepPoseError(ann_path, f"expected a JSON list of person entries, got {type(entries).__name__}")
    collector = SampleCollector(on_bad, ann_path)
    for k, entry in enumerate(entries):
        try:
            joints = np.asarray(entry["joints"], dtype=np.float64)
            vis = np.asarray(entry["joints_vis"], dtype=np.float64).reshape(-1)
            image = str(entry["image"])
            center = np.asarray(entry["center"], dtype=np.float64).reshape(-1)
            scale = float(entry["scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DeepPoseError(ann_path, f"entry {k}: missing or malformed field ({exc})") from None
        if joints.shape != (16, 2) or vis.shape != (16,) or center.shape != (2,):
            raise DeepPoseError(ann_path, f"entry {k}: expected joints 16x2, joints_vis 16, center 2; got "
                                          f"{joints.shape}, {vis.shape}, {center.shape}")
        labelled = vis > 0
        box = np.array([center[0], center[1], MPII_SCALE_PX * scale, MPII_SCALE_PX * scale])
        collector.add(root / "images" / image, joints, labelled, labelled, box, image_id=Path(image).stem)
    return collector.finish("mpii", root, split, MPII16)
