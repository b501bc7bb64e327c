"""`deeppose data check`: what a dataset folder holds, and a contact sheet of its stick figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from deeppose.data.io import read_image, verify_image
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.geometry import crop_matrix, square_box, warp_image
from deeppose.visualize import contact_sheet, draw_pose


def summarize(dataset: PoseDataset, verify: bool = True, progress: bool = True) -> dict:
    """Counts, visibility and bounds of a dataset.

    With `verify`, every image is fully decoded (a corrupt one raises DeepPoseError naming it) and its size
    read; out-of-bounds counts labelled joints outside [-0.5, W - 0.5] x [-0.5, H - 0.5].

    Returns:
        a JSON-able dict; keys include n_samples, n_skipped, n_joints, labelled_fraction, visible_fraction
        (visible / all joints), visible_of_labelled, per_joint, image_width/height ranges and
        joints_out_of_bounds (those two need `verify`).
    """
    skeleton = dataset.skeleton
    labelled, visible = dataset.labelled(), dataset.visible()
    n, k = labelled.shape
    out: dict = {
        "dataset": dataset.name,
        "root": str(dataset.root),
        "split": dataset.split,
        "skeleton": skeleton.name,
        "n_samples": n,
        "n_skipped": len(dataset.skipped),
        "skipped": [{"path": s.path, "reason": s.reason} for s in dataset.skipped],
        "n_joints": int(n * k),
        "labelled_fraction": float(labelled.mean()),
        "visible_fraction": float(visible.mean()),
        "visible_of_labelled": float(visible.sum() / max(labelled.sum(), 1)),
        "all_labelled_images": int(labelled.all(axis=1).sum()),
        "with_box": int(sum(s.box is not None for s in dataset.samples)),
        "per_joint": {name: {"labelled": float(labelled[:, j].mean()), "visible": float(visible[:, j].mean())}
                      for j, name in enumerate(skeleton.joints)},
    }
    if verify:
        sizes = np.zeros((n, 2), int)
        oob = 0
        for i, s in enumerate(tqdm(dataset.samples, desc=f"checking {dataset.name} images", disable=not progress,
                                   unit="img")):
            w, h = verify_image(s.image_path)
            sizes[i] = w, h
            x, y = s.joints[s.labelled, 0], s.joints[s.labelled, 1]
            oob += int(((x < -0.5) | (x > w - 0.5) | (y < -0.5) | (y > h - 0.5)).sum())
        out["image_width"] = {"min": int(sizes[:, 0].min()), "max": int(sizes[:, 0].max())}
        out["image_height"] = {"min": int(sizes[:, 1].min()), "max": int(sizes[:, 1].max())}
        out["joints_out_of_bounds"] = oob
    return out


def format_summary(summary: dict) -> str:
    """Human-readable multi-line version of `summarize`'s dict."""
    lines = [
        f"{summary['dataset']} [{summary['split']}] at {summary['root']} ({summary['skeleton']})",
        f"  samples              {summary['n_samples']}  (skipped as bad: {summary['n_skipped']})",
        f"  joints               {summary['n_joints']}  labelled {summary['labelled_fraction']:.3f}  "
        f"visible {summary['visible_fraction']:.3f}  (visible of labelled {summary['visible_of_labelled']:.3f})",
        f"  fully labelled imgs  {summary['all_labelled_images']}   with person box {summary['with_box']}",
    ]
    if "image_width" in summary:
        lines.append(f"  image size           {summary['image_width']['min']}-{summary['image_width']['max']} x "
                     f"{summary['image_height']['min']}-{summary['image_height']['max']} px (w x h)")
        lines.append(f"  joints out of bounds {summary['joints_out_of_bounds']}")
    for s in summary["skipped"][:10]:
        lines.append(f"  skipped: {s['path']}: {s['reason']}")
    return "\n".join(lines)


def render_sheet(dataset: PoseDataset, path: str | Path, n: int = 24, seed: int = 0, columns: int = 6) -> Path:
    """Draw n randomly chosen samples (fixed seed) as stick figures on a contact sheet PNG."""
    from deeppose.visualize import save_image

    if n <= 0:
        raise DeepPoseError(path, "a contact sheet needs at least one image")
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(dataset), size=min(n, len(dataset)), replace=False))
    tiles, captions = [], []
    for i in picks:
        s = dataset.samples[int(i)]
        tile = draw_pose(read_image(s.image_path), s.joints, s.labelled, dataset.skeleton, s.visible)
        if s.box is not None:  # people in large frames (MPII, COCO, FLIC): show the person, not the frame
            box = square_box(s.box.astype(np.float64) * np.array([1, 1, 1.25, 1.25]))
            tile = warp_image(tile, crop_matrix(box, (256, 256)), (256, 256))
        tiles.append(tile)
        captions.append(s.image_id)
    return save_image(path, contact_sheet(tiles, columns=columns, captions=captions))
