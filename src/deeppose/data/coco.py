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
from deeppose.skeleton import COCO17, LSP14, Skeleton

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
    skeleton, order = _keypoint_layout(data, ann_path)
    collector = SampleCollector(on_bad, ann_path)
    for k, ann in enumerate(data["annotations"]):
        if ann.get("iscrowd", 0) or ann.get("num_keypoints", 1) < min_keypoints:
            continue
        kps = np.asarray(ann.get("keypoints", []), dtype=np.float64)
        if kps.size != len(order) * 3:
            raise DeepPoseError(ann_path, f"annotation {k}: expected {len(order) * 3} keypoint values "
                                          f"({len(order)} x [x, y, v]), got {kps.size}")
        kps = _to_skeleton(kps.reshape(len(order), 3), order, skeleton)
        labelled = kps[:, 2] > 0
        if labelled.sum() < min_keypoints:
            continue
        if ann.get("image_id") not in files:
            raise DeepPoseError(ann_path, f"annotation {k}: image_id {ann.get('image_id')} not in 'images'")
        x, y, w, h = (float(v) for v in ann["bbox"])
        file_name = files[ann["image_id"]]
        collector.add(image_dir / file_name, kps[:, :2], labelled, kps[:, 2] == 2,
                      np.array([x + w / 2, y + h / 2, w, h]), image_id=f"{Path(file_name).stem}_{ann.get('id', k)}")
    return collector.finish("coco", root, split, skeleton)


def _keypoint_layout(data: dict, ann_path: Path) -> tuple[Skeleton, list[int]]:
    """The skeleton a COCO-format file's keypoints go into, and where each of its keypoints goes in it.

    COCO's own 17 keypoints (or a file that does not name its keypoints) keep COCO17; a file whose category names a
    subset of LSP14's joints (e.g. the 12 limb joints LSP and COCO share) is read into LSP14, the others unlabelled.
    """
    names = next((c.get("keypoints") for c in data.get("categories", []) if c.get("keypoints")), None)
    if not names or list(names) == list(COCO17.joints):
        return COCO17, list(range(17))
    if set(names) <= set(LSP14.joints) and len(set(names)) == len(names):
        return LSP14, [LSP14.index(n) for n in names]
    raise DeepPoseError(ann_path, f"keypoints {names[:4]}... are neither COCO's 17 nor LSP joints")


def _to_skeleton(kps: np.ndarray, order: list[int], skeleton: Skeleton) -> np.ndarray:
    """(n, 3) keypoints of a file -> (K, 3) in `skeleton`'s order (joints the file lacks: 0, 0, 0 = unlabelled)."""
    out = np.zeros((len(skeleton.joints), 3))
    out[order] = kps
    return out


def load_multi(root: str | Path, split: str = "test", on_bad: OnBad = "error") -> PoseDataset:
    """The multi-person check set (`data/multi`): `root/annotations.json` (COCO format, 12 LSP limb joints, every
    person annotated) with its photos in `root/images/`; one sample per person with limb joints, in LSP14 (neck
    and head top unlabelled), its box the annotation's. One split: the whole folder (evaluation only)."""
    root = Path(root)
    if split not in ("test", "all", "val"):
        raise DeepPoseError(root, f"unknown split {split!r} of the multi-person check set (test, all)")
    people = load_coco(root / "annotations.json", split, on_bad)
    return PoseDataset("multi", root, split, people.skeleton, people.samples)
