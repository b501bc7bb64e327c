"""Scoring, timing, tabulating and plotting the rows of a head-to-head comparison (`train.compare` runs it).

A row is a JSON-able dict: {"name", "label", "stage1": scored, "cascade": scored (optional), ...}, where `scored`
holds "pck" (0.05/0.1/0.2), "pcp", "pdj_auc", "ms_per_image", "confidence" and "n_parameters".
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from deeppose.data.sample import PoseDataset
from deeppose.eval.metrics import confidence_report
from deeppose.eval.report import score
from deeppose.files import atomic_write
from deeppose.models.factory import count_parameters
from deeppose.serve.predictor import Predictor


@torch.inference_mode()
def time_model(predictor: Predictor, threads: int, repeats: int = 30) -> float:
    """Median ms per image of a Predictor on random uint8 crops at batch 1, `threads` intra-op threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randint(0, 255, (1, 3, predictor.input_size, predictor.input_size), dtype=torch.uint8)
        r = predictor.source_size
        sources = torch.randint(0, 255, (1, 3, r, r), dtype=torch.uint8) if r else None
        times = []
        for i in range(repeats + 5):
            start = time.perf_counter()
            predictor.pose.normalized(x, sources)
            if i >= 5:
                times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3
    finally:
        torch.set_num_threads(previous)


def score_row(checkpoint: Path, test: PoseDataset, threads: int, progress: bool) -> dict[str, Any]:
    """LSP-test PCK@0.05/0.1/0.2, PCP (4-limb mean and per limb), how well its confidence separates right from
    wrong joints, ms/image and parameters of a checkpoint."""
    predictor = Predictor.from_checkpoint(checkpoint)
    pred, confidence = predictor.predict_dataset(test, progress=progress, with_confidence=True)
    s = score(pred, test)
    return {"pck": {a: s["pck"][a] for a in ("0.05", "0.1", "0.2")}, "pcp": s["pcp"],
            "pdj_auc": s["pdj_auc"], "ms_per_image": round(time_model(predictor, threads), 2),
            "confidence": confidence_report(pred, confidence, test.joints(), test.labelled(), test.skeleton),
            "n_parameters": count_parameters(predictor.model), "checkpoint": str(checkpoint)}


def plot_comparison(rows: list[dict[str, Any]], path: str | Path, title: str,
                    references: list[dict[str, Any]] = ()) -> Path:
    """Accuracy (LSP test PCK@0.2) against speed (ms per image): one point per entry, an arrow to the entry
    with the cascade, and the spec's reference systems as black stars. Written atomically."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for i, row in enumerate(rows):
        color = plt.get_cmap("tab10")(i % 10)
        a = row["stage1"]
        ax.scatter(a["ms_per_image"], a["pck"]["0.2"], color=color, s=40, label=row["label"], zorder=3)
        if "cascade" in row:
            c = row["cascade"]
            ax.annotate("", (c["ms_per_image"], c["pck"]["0.2"]), (a["ms_per_image"], a["pck"]["0.2"]),
                        arrowprops={"arrowstyle": "->", "color": color})
            ax.scatter(c["ms_per_image"], c["pck"]["0.2"], color=color, marker="s", s=30, zorder=3)
    for ref in references:
        ax.scatter(ref["ms_per_image"], ref["pck_0.2"], color="black", marker="*", s=120, zorder=4)
        ax.annotate(ref["label"], (ref["ms_per_image"], ref["pck_0.2"]), textcoords="offset points",
                    xytext=(6, -10), fontsize=7)
    ax.scatter([], [], color="gray", marker="s", s=30, label="+ cascade (arrow from its stage 1)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("ms per image (batch 1, CPU, log scale)")
    ax.set_ylabel("LSP test PCK@0.2 (14 joints)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        return atomic_write(path, fig.savefig)
    finally:
        plt.close(fig)


def auroc(result: dict[str, Any]) -> str:
    """A scored model's confidence AUROC for the table (right against wrong joints at PCK@0.2), "–" without."""
    conf = result.get("confidence")
    return f"{conf['auroc']:.3f}" if conf else "–"


def format_rows(rows: list[dict[str, Any]], references: list[dict[str, Any]] = ()) -> str:
    """A Markdown table of comparison rows (one line per model, a second per model + cascade; the cascade's
    confidence is its stage 1's), then the reference systems (PCK@0.2, PCP and speed only)."""
    lines = ["| configuration | PCK@0.05 | PCK@0.1 | PCK@0.2 | PCP mean | ms/image | parameters | train min | "
             "confidence AUROC |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        for key, suffix in (("stage1", ""), ("cascade", " + cascade")):
            if key not in row:
                continue
            r = row[key]
            minutes = row["train_minutes"] if key == "stage1" else f"+{r['max_minutes_stage2']:g}"
            lines.append(f"| {row['label']}{suffix} | {r['pck']['0.05']:.3f} | {r['pck']['0.1']:.3f} | "
                         f"{r['pck']['0.2']:.3f} | {r['pcp']['mean']:.3f} | {r['ms_per_image']:.1f} | "
                         f"{r['n_parameters'] / 1e6:.2f}M | {minutes} | {auroc(r)} |")
    for ref in references:
        lines.append(f"| {ref['label']} (reference) | – | – | {ref['pck_0.2']:.3f} | {ref['pcp']:.3f} | "
                     f"{ref['ms_per_image']:.1f} | – | – | – |")
    return "\n".join(lines)
