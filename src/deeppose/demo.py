"""`deeppose demo`: the embedded default job, end to end on synthetic people, on the CPU in a few minutes.

Generates a synthetic dataset, trains the small stage-1 regressor with the real training engine (DeepPose
Eq. 4 with L1, AdamW, augmentation, validation-based selection), evaluates the best checkpoint on the test
split and writes a report folder: metrics.json, pdj.png, sheet.png, the run (run/: checkpoints, logs) and
a mean-pose baseline (baseline/).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from deeppose.config import load_config
from deeppose.data.synthetic import load_synthetic, write_synthetic
from deeppose.data.torch_dataset import CropDataset
from deeppose.engine import fit
from deeppose.evaluation import format_pcp_table, predict_dataset, write_report
from deeppose.inference import Predictor

DEMO_OVERRIDES = ["data.train=[synthetic:train]", "data.val_size=200", "data.num_workers=0",
                  "data.augment.rotation_deg=20", "data.augment.scale=[0.85,1.2]", "model.arch=small",
                  "model.channels_last=false", "optim.lr=2e-3", "optim.batch_size=64", "optim.warmup_steps=50",
                  "loss=l1"]


class MeanPose(torch.nn.Module):
    """A baseline "model" that predicts one fixed pose (K, 2), in normalized crop coordinates, for every crop."""

    def __init__(self, pose: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pose", pose)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pose.expand(images.shape[0], -1, -1)


def run_demo(out: str | Path, epochs: int = 30, seed: int = 0, input_size: int = 64, n_train: int = 2000,
             n_test: int = 200, progress: bool = True) -> dict:
    """Generate synthetic people, train the small regressor for `epochs`, evaluate, write the report.

    Returns:
        the test metrics (also in out/metrics.json), with the mean-pose baseline under "baseline".
    """
    out = Path(out)
    data = out / "data"
    if not (data / "synthetic" / "annotations.json").is_file():
        write_synthetic(data / "synthetic", {"train": n_train, "test": n_test}, seed=seed, size=128,
                        progress=progress)
    if (out / "run").exists():  # the demo owns its run folder: a new demo is a new run
        shutil.rmtree(out / "run")
    cfg = load_config(None, DEMO_OVERRIDES + [f"data.root={data}", f"data.input_size={input_size}",
                                              f"epochs={epochs}", f"seed={seed}"])
    summary = fit(cfg, out / "run", progress=progress)
    test = load_synthetic(data / "synthetic", "test")
    pred = Predictor.from_checkpoint(out / "run" / "best.pt").predict_dataset(test, progress=progress)
    train = load_synthetic(data / "synthetic", "train")
    plain = CropDataset(train, input_size)
    mean_pose = torch.from_numpy(np.mean([plain[i]["joints"].numpy() for i in range(0, len(train), 10)], axis=0))
    baseline = write_report(out / "baseline", predict_dataset(MeanPose(mean_pose), test, input_size, progress=False),
                            test, "mean pose baseline")
    metrics = write_report(out, pred, test, f"demo regressor, {epochs} epochs", extra={
        "train": summary, "baseline": {"pcp": baseline["pcp"], "pck": baseline["pck"]}})
    print(format_pcp_table({"mean pose": baseline["pcp"], "demo model": metrics["pcp"]}))
    print(f"PCK@0.2: mean pose {baseline['pck']['0.2']:.3f}  demo model {metrics['pck']['0.2']:.3f}   "
          f"report: {out}")
    return metrics
