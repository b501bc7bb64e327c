"""`deeppose demo`: the embedded default job, end to end on synthetic people, on the CPU in minutes.

Generates a synthetic dataset, trains a small stage-1 regressor (DeepPose Eq. 4 with L1 or L2) for a fixed
wall-clock budget, evaluates it and writes a report folder: metrics.json, pdj.png, sheet.png, train_log.csv.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from deeppose.data.synthetic import load_synthetic, write_synthetic
from deeppose.data.torch_dataset import CropDataset
from deeppose.data.transforms import Augmentation
from deeppose.evaluation import format_pcp_table, predict_dataset, write_report
from deeppose.losses import LOSSES, masked_mean
from deeppose.models.small import SmallRegressor

DEMO_AUGMENTATION = Augmentation(rotation_deg=20.0, scale=(0.85, 1.2), shift=0.08, flip_prob=0.5, brightness=0.2,
                                 contrast=0.2)


def train_for(model: torch.nn.Module, crops: CropDataset, seconds: float, max_steps: int | None = None,
              lr: float = 2e-3, batch_size: int = 64, loss: str = "l1", seed: int = 0, num_workers: int = 0,
              log_path: Path | None = None, progress: bool = True) -> list[dict]:
    """Train with AdamW and a cosine learning rate until a wall-clock budget or a step count runs out.

    The schedule follows whichever budget is further spent, so a run limited by `max_steps` alone (with
    seconds = inf) is deterministic for a fixed seed.

    Returns:
        the training log: one dict per step (step, seconds, loss, lr).
    """
    torch.manual_seed(seed)
    loss_fn = LOSSES[loss]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    log: list[dict] = []
    start, step, epoch = time.perf_counter(), 0, 0
    bar = tqdm(total=100, desc="training", disable=not progress, bar_format="{l_bar}{bar}| {elapsed} {postfix}")
    model.train()
    def spent(elapsed: float) -> float:
        return max(elapsed / seconds, step / max_steps if max_steps else 0.0)

    while spent(time.perf_counter() - start) < 1.0:
        crops.set_epoch(epoch)
        loader = DataLoader(crops, batch_size=batch_size, shuffle=True, drop_last=True, generator=gen,
                            num_workers=num_workers)
        for batch in loader:
            elapsed = time.perf_counter() - start
            if spent(elapsed) >= 1.0:
                break
            cur_lr = lr * 0.5 * (1 + math.cos(math.pi * spent(elapsed)))
            for group in opt.param_groups:
                group["lr"] = cur_lr
            pred = model(batch["image"])
            value = masked_mean(loss_fn(pred, batch["joints"]), batch["labelled"])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            step += 1
            log.append({"step": step, "seconds": round(elapsed, 3), "loss": value.item(), "lr": cur_lr})
            bar.n = round(100 * min(spent(elapsed), 1.0))
            bar.set_postfix(loss=f"{value.item():.4f}", lr=f"{cur_lr:.2e}",
                            img_s=f"{step * batch_size / max(elapsed, 1e-6):.0f}")
        epoch += 1
    bar.n = bar.total
    bar.close()
    if log_path is not None:
        with open(log_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "seconds", "loss", "lr"])
            writer.writeheader()
            writer.writerows(log)
    return log


def run_demo(out: str | Path, minutes: float = 2.0, seed: int = 0, input_size: int = 64, n_train: int = 2000,
             n_test: int = 200, max_steps: int | None = None, progress: bool = True) -> dict:
    """Generate synthetic people, train the small regressor for `minutes` (or `max_steps`), evaluate, report.

    Returns:
        the test metrics (also in out/metrics.json), with the mean-pose baseline under "baseline".
    """
    out = Path(out)
    data_root = out / "data"
    if not (data_root / "annotations.json").is_file():
        write_synthetic(data_root, {"train": n_train, "test": n_test}, seed=seed, size=128, progress=progress)
    train, test = load_synthetic(data_root, "train"), load_synthetic(data_root, "test")
    torch.manual_seed(seed)
    model = SmallRegressor(train.skeleton.num_joints, input_size)
    crops = CropDataset(train, input_size, DEMO_AUGMENTATION, seed=seed)
    log = train_for(model, crops, minutes * 60.0, max_steps=max_steps, seed=seed, log_path=out / "train_log.csv",
                    progress=progress)
    pred = predict_dataset(model, test, input_size, progress=progress)
    # Baseline: the mean training pose (in crop coordinates) predicted for every test image.
    plain = CropDataset(train, input_size)
    mean_pose = torch.from_numpy(np.mean([plain[i]["joints"].numpy() for i in range(0, len(train), 10)], axis=0))
    baseline_model = lambda images: mean_pose.expand(images.shape[0], -1, -1)  # noqa: E731
    baseline = write_report(out / "baseline", predict_dataset(_AsModule(baseline_model), test, input_size,
                                                              progress=False), test, "mean pose baseline")
    budget = f"{len(log)} steps" if math.isinf(minutes) else f"{minutes:g} min"
    metrics = write_report(out, pred, test, f"demo regressor, {budget}", extra={
        "train": {"steps": len(log), "seconds": log[-1]["seconds"] if log else 0.0, "final_loss": log[-1]["loss"] if log else None,
                  "n_train": len(train), "input_size": input_size},
        "baseline": {"pcp": baseline["pcp"], "pck": baseline["pck"]},
    })
    torch.save({"model": model.state_dict(), "meta": {"arch": "small", "input_size": input_size,
                                                      "skeleton": train.skeleton.name}}, out / "model.pt")
    print(format_pcp_table({"mean pose": baseline["pcp"], "demo model": metrics["pcp"]}))
    print(f"PCK@0.2: mean pose {baseline['pck']['0.2']:.3f}  demo model {metrics['pck']['0.2']:.3f}   "
          f"report: {out}")
    return metrics


class _AsModule(torch.nn.Module):
    """Wrap a function of the images as a module, so baselines go through `predict_dataset`."""

    def __init__(self, fn) -> None:  # noqa: ANN001
        super().__init__()
        self.fn = fn

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fn(images)
