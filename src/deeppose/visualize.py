"""Pictures: stick figures on images (DeepPose Figs. 6, 8), contact sheets, and PDJ curves (Figs. 3-5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deeppose.files import atomic_write
from deeppose.skeleton import Skeleton


def limb_colours(skeleton: Skeleton) -> list[tuple[int, int, int]]:
    """One RGB colour per limb (then per extra bone) from tab20: a limb and its mirror get two shades of one hue."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    n = len(skeleton.limbs) + len(skeleton.bones)
    return [tuple(int(255 * c) for c in cmap(i % 20)[:3]) for i in range(n)]


def person_colour(index: int) -> tuple[int, int, int]:
    """The RGB colour of the index-th person of a picture (tab10, cycling), the same in every picture and on the
    server's page."""
    import matplotlib

    return tuple(int(255 * c) for c in matplotlib.colormaps["tab10"](index % 10)[:3])


def draw_pose(image: np.ndarray, joints: np.ndarray, labelled: np.ndarray, skeleton: Skeleton,
              visible: np.ndarray | None = None, thickness: int | None = None,
              colour: tuple[int, int, int] | None = None) -> np.ndarray:
    """Draw a stick figure, each limb in its own colour (or all in `colour`: one person among several).

    Args:
        image: (H, W, 3) uint8 RGB (not modified).
        joints: (K, 2) pixels.
        labelled: (K,) bool; limbs with an unlabelled endpoint are not drawn.
        visible: (K,) bool or None; occluded joints are drawn as hollow circles.
        colour: RGB of every limb (None: `limb_colours`).

    Returns:
        (H, W, 3) uint8 RGB copy with the figure drawn.
    """
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    t = thickness or max(1, round(min(h, w) / 100))
    colours = limb_colours(skeleton) if colour is None else [colour] * (len(skeleton.limbs) + len(skeleton.bones))
    shift = 4
    pt = lambda p: (int(round(float(p[0]) * 16)), int(round(float(p[1]) * 16)))  # noqa: E731
    segments = [(limb.a, limb.b) for limb in skeleton.limbs] + [((a,), (b,)) for a, b in skeleton.bones]
    for (ia, ib), colour in zip(segments, colours):
        idx = list(ia) + list(ib)
        if not labelled[idx].all():
            continue
        pa, pb = joints[list(ia)].mean(axis=0), joints[list(ib)].mean(axis=0)
        cv2.line(out, pt(pa), pt(pb), colour, t + 1, cv2.LINE_AA, shift)
    for k in np.flatnonzero(labelled):
        filled = visible is None or bool(visible[k])
        cv2.circle(out, pt(joints[k]), (t + 1) * 16, (255, 255, 255), -1 if filled else max(1, t // 2),
                   cv2.LINE_AA, shift)
    return out


def draw_box(image: np.ndarray, box: np.ndarray, found: bool = True, colour: tuple[int, int, int] | None = None,
             label: str = "") -> np.ndarray:
    """Draw a person box [x, y, w, h] (pixels from the top-left corner) on a copy of an RGB image: in `colour`, else
    green where a person was found and red where nobody was; `label` written above its top-left corner."""
    out = np.ascontiguousarray(image.copy())
    t = max(1, round(min(out.shape[:2]) / 150))
    lo = np.round(np.asarray(box[:2], np.float64) * 16).astype(int)  # the first and last pixel of each side
    hi = np.round((np.asarray(box[:2], np.float64) + np.asarray(box[2:], np.float64) - 1) * 16).astype(int)
    colour = colour or ((40, 220, 40) if found else (230, 40, 40))
    cv2.rectangle(out, (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1])), colour, t, cv2.LINE_AA, 4)
    if label:
        scale = max(0.4, min(out.shape[:2]) / 600)
        origin = (int(max(lo[0] // 16, 0)), int(max(lo[1] // 16 - 4, 12)))
        cv2.putText(out, label, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, t), cv2.LINE_AA)
    return out


def contact_sheet(tiles: list[np.ndarray], columns: int = 6, tile_size: int = 160,
                  captions: list[str] | None = None) -> np.ndarray:
    """Lay RGB images out on a grid, each letterboxed into a tile_size square; optional captions."""
    if not tiles:
        raise ValueError("contact sheet needs at least one image")
    rows = (len(tiles) + columns - 1) // columns
    sheet = np.full((rows * tile_size, columns * tile_size, 3), 32, np.uint8)
    for i, tile in enumerate(tiles):
        h, w = tile.shape[:2]
        s = tile_size / max(h, w)
        resized = cv2.resize(tile, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, columns)
        y0 = r * tile_size + (tile_size - resized.shape[0]) // 2
        x0 = c * tile_size + (tile_size - resized.shape[1]) // 2
        sheet[y0:y0 + resized.shape[0], x0:x0 + resized.shape[1]] = resized
        if captions:
            cv2.putText(sheet, captions[i], (c * tile_size + 3, r * tile_size + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return sheet


def save_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image (PNG/JPEG by extension) atomically, creating the folder."""
    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"{path}: could not write image")

    return atomic_write(path, write)


def _save_figure(fig: Any, path: Path) -> Path:
    """Write a Matplotlib figure to a PNG atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        return atomic_write(path, fig.savefig)
    finally:
        plt.close(fig)


def plot_pdj(alphas: np.ndarray, curves: dict[str, np.ndarray], path: str | Path, title: str = "PDJ") -> Path:
    """Plot PDJ curves (detection rate vs. normalized distance, DeepPose Figs. 3-5) to a PNG.

    Args:
        alphas: (A,) normalized distances (fraction of the torso diameter).
        curves: label -> (A,) detection rates in [0, 1].
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=120)
    for label, values in curves.items():
        if label.startswith("all"):  # the overall curve stands out from the per-joint ones
            ax.plot(alphas, values, label=label, color="black", linestyle="--", linewidth=2.4)
        else:
            ax.plot(alphas, values, label=label, linewidth=1.6)
    ax.set_xlim(float(alphas[0]), float(alphas[-1]))
    ax.set_ylim(0, 1)
    ax.set_xlabel("normalized distance to true joint (fraction of torso diameter)")
    ax.set_ylabel("detection rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save_figure(fig, path)


def joint_group_curves(pdj_result: dict, skeleton: Skeleton) -> dict[str, np.ndarray]:
    """Average a PDJ result's per-joint curves over left/right pairs (e.g. "wrist", "elbow"), as in Fig. 4."""
    groups: dict[str, list[np.ndarray]] = {}
    for name, curve in pdj_result["per_joint"].items():
        key = name[2:] if name[:2] in ("l_", "r_") else name
        groups.setdefault(key, []).append(np.asarray(curve))
    return {k: np.mean(v, axis=0) for k, v in groups.items()}


def plot_pdj_stages(alphas: np.ndarray, stage_groups: list[dict[str, np.ndarray]], path: str | Path,
                    groups: tuple[str, ...] = ("wrist", "elbow", "knee", "ankle"), title: str = "PDJ by stage"
                    ) -> Path:
    """DeepPose Figure 5: PDJ curves of every cascade stage, one panel per joint group.

    Args:
        alphas: (A,) normalized distances.
        stage_groups: per stage, joint group -> (A,) curve (from `joint_group_curves`), stage 1 first.
        groups: the joint groups to draw, one panel each.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.4), dpi=120, sharey=True)
    for ax, group in zip(np.atleast_1d(axes), groups):
        for s, curves in enumerate(stage_groups):
            ax.plot(alphas, curves[group], label=f"stage {s + 1}", linewidth=1.8)
        ax.set_xlim(float(alphas[0]), float(alphas[-1]))
        ax.set_ylim(0, 1)
        ax.set_title(group)
        ax.set_xlabel("normalized distance")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("detection rate")
    np.atleast_1d(axes)[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    return _save_figure(fig, path)


def refinement_sheet(images: list[np.ndarray], stage_joints: list[np.ndarray], skeleton: Skeleton,
                     names: list[str]) -> np.ndarray:
    """DeepPose Figure 6: each image's predictions by stage 1, 2, ... side by side (one row per image).

    Args:
        images: (H, W, 3) uint8 RGB each; stage_joints: per image, (n, K, 2) pixels of the n stages.
        names: a caption per image.

    Returns:
        (H', W', 3) uint8 sheet with n columns.
    """
    tiles, captions = [], []
    for image, joints, name in zip(images, stage_joints, names):
        for s, y in enumerate(joints):
            tiles.append(draw_pose(image, y, np.ones(len(y), bool), skeleton))
            captions.append(f"{name} st{s + 1}")
    return contact_sheet(tiles, columns=len(stage_joints[0]), captions=captions)
