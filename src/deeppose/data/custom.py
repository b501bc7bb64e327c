"""A simple format for users' own data, as JSON or CSV. Image paths are relative to the file's folder.

JSON (`annotations.json`):
    {"skeleton": "lsp14",
     "samples": [{"image": "images/0001.jpg", "joints": [[x, y, v], ...],   # K entries
                  "box": [cx, cy, w, h],        # optional
                  "split": "train"}]}           # optional

CSV: a header `image,<joint>_x,<joint>_y,<joint>_v,...` (joint names of one skeleton, e.g. `r_ankle_x`),
optional `box_cx,box_cy,box_w,box_h` and `split` columns, then one row per person.

The flag v follows COCO: 0 = not labelled, 1 = labelled but occluded, 2 = labelled and visible.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from deeppose.data.collect import OnBad, SampleCollector
from deeppose.data.io import load_json
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.files import atomic_write
from deeppose.skeleton import SKELETONS, Skeleton, get_skeleton

BOX_COLUMNS = ("box_cx", "box_cy", "box_w", "box_h")


def _resolve(root: Path) -> Path:
    if root.is_dir():
        for name in ("annotations.json", "annotations.csv"):
            if (root / name).is_file():
                return root / name
        raise DeepPoseError(root, "no annotations.json or annotations.csv in this folder")
    if not root.is_file():
        raise DeepPoseError(root, "annotation file or folder not found")
    return root


def _records_from_json(path: Path) -> tuple[Skeleton, list[dict[str, Any]]]:
    data = load_json(path)
    if isinstance(data, list):
        data = {"samples": data}
    if not isinstance(data, dict) or not isinstance(data.get("samples"), list):
        raise DeepPoseError(path, "expected an object with a 'samples' list")
    try:
        skeleton = get_skeleton(data.get("skeleton", "lsp14"))
    except KeyError as exc:
        raise DeepPoseError(path, str(exc.args[0])) from None
    return skeleton, data["samples"]


def _records_from_csv(path: Path) -> tuple[Skeleton, list[dict[str, Any]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0].keys()) if rows else []
    if "image" not in header:
        raise DeepPoseError(path, "CSV needs an 'image' column and <joint>_x/_y/_v columns")
    matches = [s for s in SKELETONS.values() if all(f"{j}_{c}" in header for j in s.joints for c in "xyv")]
    if not matches:
        raise DeepPoseError(path, "CSV columns do not name the joints of any skeleton "
                                  f"({', '.join(SKELETONS)}), e.g. r_ankle_x, r_ankle_y, r_ankle_v")
    skeleton = max(matches, key=lambda s: s.num_joints)
    records = []
    for row in rows:
        rec: dict[str, Any] = {"image": row["image"], "split": row.get("split") or None}
        try:
            rec["joints"] = [[float(row[f"{j}_x"]), float(row[f"{j}_y"]), float(row[f"{j}_v"])]
                             for j in skeleton.joints]
            if all(row.get(c) not in (None, "") for c in BOX_COLUMNS):
                rec["box"] = [float(row[c]) for c in BOX_COLUMNS]
        except ValueError as exc:
            raise DeepPoseError(path, f"row for {row['image']}: {exc}") from None
        records.append(rec)
    return skeleton, records


def load_custom(root: str | Path, split: str = "all", on_bad: OnBad = "error", name: str = "custom") -> PoseDataset:
    """Load the custom JSON/CSV format from a file, or from a folder holding annotations.json/.csv.

    Args:
        split: "all", or keep only samples whose "split" field equals it.
    """
    path = _resolve(Path(root))
    skeleton, records = (_records_from_csv if path.suffix.lower() == ".csv" else _records_from_json)(path)
    collector = SampleCollector(on_bad, path)
    for k, rec in enumerate(records):
        if split != "all" and rec.get("split") != split:
            continue
        try:
            joints = np.asarray(rec["joints"], dtype=np.float64)
            image = rec["image"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DeepPoseError(path, f"sample {k}: missing or malformed field ({exc})") from None
        if joints.shape != (skeleton.num_joints, 3):
            raise DeepPoseError(path, f"sample {k}: expected joints {skeleton.num_joints}x3 ([x, y, v]) for "
                                      f"{skeleton.name}, got {joints.shape}")
        box = rec.get("box")
        collector.add(path.parent / image, joints[:, :2], joints[:, 2] > 0, joints[:, 2] == 2,
                      None if box is None else np.asarray(box, dtype=np.float64), image_id=Path(image).stem)
    return collector.finish(name, path.parent, split, skeleton)


def write_custom_json(path: str | Path, skeleton: Skeleton, records: list[dict[str, Any]]) -> Path:
    """Write records (image, joints [[x, y, v]], optional box/split) as a custom-format JSON, atomically."""
    def dump(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"skeleton": skeleton.name, "samples": records}, f)

    return atomic_write(path, dump)
