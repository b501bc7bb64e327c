"""COCO keypoints: one single-person sample per annotated person box.

Layout: `root/annotations/person_keypoints_<set>.json` with images in `root/<set>/` (split "train" means
train2017, "val" and "test" mean val2017, any other split is used as the set name), or `root` pointing
straight at an annotation json (images then in that standard place, in `images/` beside it, or beside it).
Keypoint flags: v=0 not labelled, v=1 labelled but occluded, v=2 labelled and visible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeppose.data.collect import OnBad, SampleCollector
from deeppose.data.io import load_json
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.skeleton import COCO17

COCO_SETS = {"train": "train2017", "val": "val2017", "test": "val2017"}


def _locate(root: Path, split: str) -> tuple[Path, Path]:
    if root.is_file():
        # A json inside the standard layout (annotations/person_keypoints_val2017.json -> ../val2017/),
        # else images/ beside it, else the json's own folder.
        set_name = root.stem.removeprefix("person_keypoints_")
        for images in (root.parent.parent / set_name, root.parent / "images"):
            if images.is_dir():
                return root, images
        return root, root.parent
    if not root.is_dir():
        raise DeepPoseError(root, "COCO folder or annotation file not found")
    name = COCO_SETS.get(split, split)
    return root / "annotations" / f"person_keypoints_{name}.json", root / name


def load_coco(root: str | Path, split: str = "val", on_bad: OnBad = "error", min_keypoints: int = 1) -> PoseDataset:
    """Load single-person samples from a COCO keypoints json.

    Crowd annotations and people with fewer than `min_keypoints` labelled keypoints are not samples (that is
    the format's definition, not bad input). The box is the annotation's bbox.
    """
    root = Path(root)
    ann_path, image_dir = _locate(root, split)
    data = load_json(ann_path)
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise DeepPoseError(ann_path, "not a COCO keypoints file (needs 'images' and 'annotations')")
    files = {img["id"]: img["file_name"] for img in data["images"]}
    collector = SampleCollector(on_bad, ann_path)
    for k, ann in enumerate(data["annotations"]):
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 1) < min_keypoints:
            continue
        kps = np.asarray(ann.get("keypoints", []), dtype=np.float64)
        if kps.size != 17 * 3:
            raise DeepPoseError(ann_path, f"annotation {k}: expected 51 keypoint values (17 x [x, y, v]), "
                                          f"got {kps.size}")
        kps = kps.reshape(17, 3)
        labelled = kps[:, 2] > 0
        if labelled.sum() < min_keypoints:
            continue
        if ann.get("image_id") not in files:
            raise DeepPoseError(ann_path, f"annotation {k}: image_id {ann.get('image_id')} not in 'images'")
        x, y, w, h = (float(v) for v in ann["bbox"])
        file_name = files[ann["image_id"]]
        collector.add(image_dir / file_name, kps[:, :2], labelled, kps[:, 2] == 2,
                      np.array([x + w / 2, y + h / 2, w, h]), image_id=f"{Path(file_name).stem}_{ann.get('id', k)}")
    return collector.finish("coco", root, split, COCO17)
