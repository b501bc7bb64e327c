"""Training budgets in minutes: how many epochs of a config fit a time budget on this machine.

A cosine schedule only ends well if it ends: a run cut off by its time limit stops at a high learning rate. So a
budget in minutes is turned into epochs before training, from a short throughput probe of the config's model:

    plan = plan_epochs(cfg, minutes=90, where=run_folder)   # {"probe_images_per_s", "n_train", "epochs", ...}
    fit(replace(cfg, epochs=plan["epochs"]), run_folder)

A probe beside other busy processes reads the machine as slow and would plan too few epochs, so `plan_epochs`
counts the CPU time others take meanwhile and refuses to plan on a busy machine.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from deeppose.config import TrainConfig
from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import CropDataset
from deeppose.errors import DeepPoseError
from deeppose.heads.base import head_output
from deeppose.heads.losses import masked_mean
from deeppose.train.builders import build_datasets, build_model, make_objective, make_optimizer
from deeppose.train.cpuload import cpu_sample, other_cores

EFFICIENCY = 0.85  # share of a budget spent in training steps (the rest: data loading, validation, checkpoints)


def probe_images_per_s(cfg: TrainConfig, train: PoseDataset, steps: int = 6) -> float:
    """Training images/s of a config's model (forward, loss, backward, step on one batch of `train` in memory)."""
    crops = CropDataset(train, cfg.data.input_size, cfg.data.augment, seed=cfg.seed)
    bs = cfg.optim.batch_size
    batch = torch.utils.data.default_collate([crops[i % len(crops)] for i in range(bs)])
    model = build_model(cfg, train.skeleton.num_joints).train()
    objective = make_objective(cfg, cfg.model, cfg.loss, cfg.heatmap, "loss")
    opt, _ = make_optimizer(model, cfg.optim, 100)
    images = batch["image"].contiguous(memory_format=torch.channels_last) if cfg.model.channels_last \
        else batch["image"]
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        loss = masked_mean(objective(head_output(model, images), batch["joints"]), batch["labelled"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return bs / statistics.median(times[2:])


def budget_epochs(images_per_s: float, minutes: float, n_train: int, efficiency: float = EFFICIENCY) -> float:
    """Epochs that fit `minutes` at a probed speed, allowing for the loader and validation, to 1/100 of an
    epoch (rounded down, at least 0.01): a fractional last epoch is cut short, so runs of the same budget train
    for the same time whatever their epoch length."""
    return max(0.01, math.floor(minutes * 60 * images_per_s * efficiency / n_train * 100) / 100)


def plan_epochs(cfg: TrainConfig, minutes: float, where: str | Path, busy_limit: float = 0.5) -> dict[str, Any]:
    """Probe a config's training speed and plan the epochs that fit `minutes` on this machine.

    Returns:
        {"probe_images_per_s", "n_train", "epochs", "other_cores"}: other_cores is the CPU load that other
        processes put on the machine during the probe.
    Raises:
        DeepPoseError naming `where` when the budget is not positive, or when other processes kept more than
        `busy_limit` cores busy during the probe.
    """
    if not minutes > 0:
        raise DeepPoseError(where, f"a training budget must be a positive number of minutes, not {minutes}")
    train, _ = build_datasets(cfg.data, cfg.seed)
    before = cpu_sample()
    images_per_s = probe_images_per_s(cfg, train)
    busy = other_cores(before, cpu_sample())
    if busy > busy_limit:
        raise DeepPoseError(where, f"the machine is busy: other processes kept {busy:.1f} CPU cores busy during the "
                                   f"throughput probe, which would plan too few epochs; plan on an idle machine "
                                   f"(allowed: {busy_limit:g} cores)")
    return {"probe_images_per_s": round(images_per_s, 1), "n_train": len(train),
            "epochs": budget_epochs(images_per_s, minutes, len(train)), "other_cores": round(busy, 2)}
