"""Score predictions against a dataset and write a report folder (metrics.json, PDJ plots, stick figures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset
from deeppose.eval.metrics import pckh, pcp, pdj
from deeppose.files import write_json
from deeppose.visualize import (
    contact_sheet,
    draw_pose,
    joint_group_curves,
    plot_pdj,
    plot_pdj_stages,
    refinement_sheet,
    save_image,
)


def score(pred: np.ndarray, dataset: PoseDataset) -> dict:
    """All metrics of predictions (N, K, 2) pixels against a dataset's ground truth, as a JSON-able dict.

    Keys: "pcp" (strict PCP per group plus "mean", the Table 1 four-limb mean), "pcp_loose", "pcp_per_limb",
    "pck" (PDJ at 0.05 .. 0.5 of the torso diameter), "pdj_auc", "pckh" (when the skeleton has a head
    segment), "n_images", "n_joints", "n_images_excluded", and the full "pdj" curves.
    """
    gt, labelled, skeleton = dataset.joints(), dataset.labelled(), dataset.skeleton
    strict, loose = pcp(pred, gt, labelled, skeleton, strict=True), pcp(pred, gt, labelled, skeleton, strict=False)
    curves = pdj(pred, gt, labelled, skeleton)
    out = {
        "dataset": dataset.name,
        "split": dataset.split,
        "n_images": len(dataset),
        "n_joints": curves["n_joints"],
        "n_images_excluded": curves["n_images_excluded"],
        "pcp": {**strict["per_group"], "mean": strict["mean"]},
        "pcp_loose": {**loose["per_group"], "mean": loose["mean"]},
        "pcp_per_limb": strict["per_limb"],
        "pcp_n_limbs": strict["n_limbs"],
        "pck": curves["pck"],
        "pdj_auc": curves["auc"],
        "pdj": curves,
    }
    if skeleton.head is not None:
        out["pckh"] = pckh(pred, gt, labelled, skeleton)
    return out


def format_pcp_table(rows: dict[str, dict]) -> str:
    """A PCP table like DeepPose's Table 1: one row per method/stage, columns upper/lower arm/leg and mean."""
    cols = ("upper_arm", "lower_arm", "upper_leg", "lower_leg", "mean")
    head = f"{'':<14}" + "".join(f"{c.replace('_', ' '):>11}" for c in cols)
    lines = [head]
    for name, p in rows.items():
        lines.append(f"{name:<14}" + "".join(f"{p.get(c, float('nan')):>11.3f}" for c in cols))
    return "\n".join(lines)



def write_report(out: str | Path, pred: np.ndarray, dataset: PoseDataset, title: str, extra: dict | None = None,
                 n_sheet: int = 24, scored: dict | None = None) -> dict:
    """Write metrics.json, pdj.png and sheet.png (predicted stick figures) into `out`; return the metrics.

    `scored`: `score(pred, dataset)` when the caller already has it.
    """
    out = Path(out)
    metrics = dict(scored) if scored is not None else score(pred, dataset)
    if extra:
        metrics.update(extra)
    write_json(out / "metrics.json", metrics)
    curves = metrics["pdj"]
    groups = joint_group_curves(curves, dataset.skeleton)
    groups["all joints"] = np.asarray(curves["mean"])
    plot_pdj(np.asarray(curves["alphas"]), groups, out / "pdj.png", title=f"PDJ: {title}")
    picks = np.linspace(0, len(dataset) - 1, min(n_sheet, len(dataset))).round().astype(int)
    tiles = [draw_pose(read_image(dataset[i].image_path), pred[i], np.ones(dataset.skeleton.num_joints, bool),
                       dataset.skeleton) for i in picks]
    save_image(out / "sheet.png", contact_sheet(tiles, captions=[dataset[i].image_id for i in picks]))
    return metrics


def write_stage_report(out: str | Path, pred: np.ndarray, dataset: PoseDataset, title: str, extra: dict | None = None,
                       n_examples: int = 8) -> dict:
    """Report a cascade stage by stage: `write_report` of the last stage, plus per-stage metrics in
    metrics.json ("stages": one entry per stage), the PDJ curves of every stage (pdj_stages.png, DeepPose Fig. 5)
    and example refinements (refinements.png, Fig. 6: stages 1..n on the same images).

    Args:
        pred: (N, n, K, 2) pixel predictions of stages 1..n.

    Returns:
        the metrics of the last stage with "stages" added.
    """
    out = Path(out)
    n = pred.shape[1]
    stages, stage_groups = [], []
    for s in range(n):
        m = score(pred[:, s], dataset)
        stages.append({"stage": s + 1, "pcp": m["pcp"], "pck": m["pck"], "pdj_auc": m["pdj_auc"]})
        stage_groups.append(joint_group_curves(m["pdj"], dataset.skeleton))
        alphas = np.asarray(m["pdj"]["alphas"])
    metrics = write_report(out, pred[:, -1], dataset, title, extra={**(extra or {}), "stages": stages}, scored=m)
    groups = tuple(g for g in ("wrist", "elbow", "knee", "ankle") if g in stage_groups[0]) or \
        tuple(stage_groups[0])[:4]
    plot_pdj_stages(alphas, stage_groups, out / "pdj_stages.png", groups, title=f"PDJ by stage: {title}")
    # the examples where the cascade moved the joints most
    moved = np.nan_to_num(np.linalg.norm(pred[:, -1] - pred[:, 0], axis=-1).mean(-1), nan=-1.0)
    picks = np.sort(np.argsort(-moved, kind="stable")[: min(n_examples, len(dataset))])
    sheet = refinement_sheet([read_image(dataset[i].image_path) for i in picks], [pred[i] for i in picks],
                             dataset.skeleton, [dataset[i].image_id for i in picks])
    save_image(out / "refinements.png", sheet)
    return metrics
