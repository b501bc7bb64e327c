"""Leeds Sports Pose (LSP) and its extended training set (LSPET).

The two `joints.mat` files differ in layout *and* in the meaning of the flag:
    * LSP:   3 x 14 x N, row 2 flag 0 = visible, 1 = occluded; every joint has a (possibly estimated)
             coordinate, so all joints are labelled.
    * LSPET: 14 x 3 x N, column 2 flag 1 = visible/annotated, 0 = not; flag-0 joints hold junk
             coordinates and are therefore unlabelled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeppose.data.collect import OnBad, SampleCollector
from deeppose.data.io import load_mat, require_dir
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.skeleton import LSP14

# Johnson & Everingham's standard split, 0-based image indices.
LSP_SPLITS = {"train": range(0, 1000), "test": range(1000, 2000)}


def _joints_array(mat_path: Path, layout: tuple[int, int], other_name: str) -> np.ndarray:
    mat = load_mat(mat_path)
    if "joints" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DeepPoseError(mat_path, f"no variable 'joints' (found: {', '.join(keys) or 'nothing'})")
    joints = np.asarray(mat["joints"], dtype=np.float64)
    if joints.ndim != 3 or joints.shape[:2] != layout:
        hint = ""
        if joints.ndim == 3 and joints.shape[:2] == layout[::-1]:
            hint = f"; this is the {other_name} layout, use --dataset {other_name.lower()}"
        raise DeepPoseError(mat_path, f"'joints' has shape {joints.shape}, expected {layout[0]}x{layout[1]}xN{hint}")
    if joints.shape[2] == 0:
        raise DeepPoseError(mat_path, "'joints' holds no images")
    return joints


def load_lsp(root: str | Path, split: str = "train", on_bad: OnBad = "error") -> PoseDataset:
    """Load LSP from `root/joints.mat` (3 x 14 x N) and `root/images/im%04d.jpg`.

    Args:
        root: the LSP folder.
        split: "train" (images 1-1000), "test" (1001-2000) or "all".
        on_bad: "error" or "skip" for bad samples.
    """
    root = require_dir(root, "LSP folder")
    mat_path = root / "joints.mat"
    joints = _joints_array(mat_path, (3, 14), "LSPET")
    n = joints.shape[2]
    if split == "all":
        indices = range(n)
    elif split in LSP_SPLITS:
        indices = LSP_SPLITS[split]
        if n < indices.stop:
            raise DeepPoseError(mat_path, f"holds {n} images; the standard {split} split needs images "
                                          f"{indices.start + 1}-{indices.stop} (use --split all)")
    else:
        raise DeepPoseError(root, f"unknown LSP split {split!r} (train, test, all)")
    collector = SampleCollector(on_bad, mat_path)
    for i in indices:
        flag = joints[2, :, i]
        if not np.isin(flag, (0, 1)).all():
            raise DeepPoseError(mat_path, f"image {i + 1}: visibility flags must be 0 or 1, got {flag.tolist()}")
        collector.add(root / "images" / f"im{i + 1:04d}.jpg", joints[:2, :, i].T, labelled=np.ones(14, bool),
                      visible=flag == 0, image_id=f"im{i + 1:04d}")
    return collector.finish("lsp", root, split, LSP14)


# LSPET has no official split. Ours: LSPET_VAL_SIZE whole photos held out from every network (pose networks, the
# localizer), chosen by a fixed permutation of the folder's entries; they are the localizer's validation photos
# of every earlier release (its seed 0), so no shipped localizer has trained on them.
LSPET_VAL_SIZE = 500
LSPET_VAL_SEED = (0, 13)


def lspet_val_indices(n: int, size: int = LSPET_VAL_SIZE) -> np.ndarray:
    """(size,) sorted entry indices of the held-out LSPET photos among a folder's `n` entries."""
    if not 0 < size < n:
        raise ValueError(f"an LSPET validation split of {size} needs more than {size} photos, got {n}")
    return np.sort(np.random.default_rng(list(LSPET_VAL_SEED)).permutation(n)[:size])


def load_lspet(root: str | Path, split: str = "all", on_bad: OnBad = "error") -> PoseDataset:
    """Load an LSPET-format folder: `root/joints.mat` (14 x 3 x N, optional `image_ids`) and `root/images/`.

    Splits: "all" (the whole folder; "test" is the same, for a folder used as a held-out set in this format),
    "val" (the LSPET_VAL_SIZE held-out photos of `lspet_val_indices`: model selection and whole-photo reports) and
    "train" (the rest). A folder of LSPET_VAL_SIZE photos or fewer has no "val" and "train" is all of it.

    Images are `im%05d.jpg` named by `image_ids` (1-based ids) when the file has it, else 1..N.
    """
    root = require_dir(root, "LSPET folder")
    if split not in ("all", "train", "val", "test"):
        raise DeepPoseError(root, f"unknown LSPET split {split!r} (all, train, val, test)")
    mat_path = root / "joints.mat"
    joints = _joints_array(mat_path, (14, 3), "LSP")
    n = joints.shape[2]
    ids = np.arange(1, n + 1)
    mat = load_mat(mat_path, variable_names=["image_ids"])
    if "image_ids" in mat:
        ids = np.asarray(mat["image_ids"]).reshape(-1).astype(int)
        if ids.size != n:
            raise DeepPoseError(mat_path, f"'image_ids' has {ids.size} entries for {n} images in 'joints'")
    collector = SampleCollector(on_bad, mat_path)
    for k in range(n):
        labelled = joints[:, 2, k] == 1  # flag 0: not annotated, coordinates are junk
        collector.add(root / "images" / f"im{ids[k]:05d}.jpg", joints[:, :2, k], labelled=labelled,
                      visible=labelled, image_id=f"im{ids[k]:05d}")
    dataset = collector.finish("lspet", root, split, LSP14)
    if split in ("all", "test"):
        return dataset
    if len(dataset) <= LSPET_VAL_SIZE:
        if split == "val":
            raise DeepPoseError(root, f"holds {len(dataset)} photos; the held-out split takes {LSPET_VAL_SIZE} "
                                      "and needs more")
        return dataset
    val = lspet_val_indices(len(dataset))
    keep = val if split == "val" else np.setdiff1d(np.arange(len(dataset)), val)
    return dataset.subset(keep, split)
