"""Builders that turn a training config into its parts: datasets, networks, optimizers, objectives."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeppose.config import DataConfig, HeatmapLossConfig, ModelConfig, OptimConfig, TrainConfig
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.geometry import joints_box
from deeppose.heads import HeadOutput, objective
from deeppose.models.checkpoint import init_from_checkpoint
from deeppose.models.factory import create_model
from deeppose.paths import data_root, weights_root


def _load_entry(cfg: DataConfig, root: Path, entry: str) -> PoseDataset:
    """One "dataset:split" entry, its people boxed around their joints if the dataset is in `cfg.joints_box`."""
    name, _, split = entry.partition(":")
    part = load_dataset(name, root / name, split or "train")
    if part.name not in cfg.joints_box:
        return part
    return PoseDataset(part.name, part.root, part.split, part.skeleton, [
        replace(s, box=joints_box(s.joints, s.labelled, cfg.joints_box_scale).astype(np.float32))
        for s in part.samples])


def build_datasets(cfg: DataConfig, seed: int) -> tuple[PoseDataset, PoseDataset]:
    """Concatenate the `dataset:split` training entries; validate on `cfg.val`, else on `val_size` images carved out
    of the first entry.

    The carved-out images are chosen by a fixed permutation of `seed`, so resumed runs use the same split. A `val`
    set sharing a photo with the training entries is refused.
    """
    root = Path(cfg.root) if cfg.root else data_root()
    parts = [_load_entry(cfg, root, entry) for entry in cfg.train]
    skeletons = {p.skeleton.name for p in parts}
    if len(skeletons) != 1:
        raise DeepPoseError(None, f"training sets mix skeletons {sorted(skeletons)}; use one joint layout")
    if cfg.val:
        val = _load_entry(cfg, root, cfg.val)
        if val.skeleton.name != parts[0].skeleton.name:
            raise DeepPoseError(val.root, f"data.val {cfg.val} has skeleton {val.skeleton.name}, training "
                                          f"{parts[0].skeleton.name}")
        shared = {s.image_path.resolve() for s in val.samples} & {s.image_path.resolve() for p in parts
                                                                 for s in p.samples}
        if shared:
            raise DeepPoseError(val.root, f"data.val {cfg.val} shares {len(shared)} photos with data.train "
                                          f"(e.g. {sorted(shared)[0].name}); validate on held-out photos")
        samples = [s for p in parts for s in p.samples]
        return PoseDataset("+".join(cfg.train), root, "train", parts[0].skeleton, samples), val.subset(
            np.arange(len(val)), "val")
    first = parts[0]
    if not 0 <= cfg.val_size < len(first):
        raise DeepPoseError(first.root, f"val_size {cfg.val_size} must be below the {len(first)} samples of "
                                        f"{cfg.train[0]}")
    order = np.random.default_rng([seed, 11]).permutation(len(first))
    val = first.subset(np.sort(order[: cfg.val_size]), "val")
    samples = [first.samples[i] for i in np.sort(order[cfg.val_size:])]
    for p in parts[1:]:
        samples += p.samples
    train = PoseDataset("+".join(cfg.train), root, "train", first.skeleton, samples)
    return train, val


def resolve_weights(path: str) -> str | None:
    """A backbone weights path as given, or found under the shared weights folder; None for ""."""
    if not path:
        return None
    if Path(path).is_file() or not (weights_root() / path).is_file():
        return path
    return str(weights_root() / path)


def build_network(m: ModelConfig, num_joints: int, input_size: int) -> nn.Module:
    """A configured network (`models.factory.create_model`) with its `init` checkpoint's weights loaded, or else
    its backbone weights (the init checkpoint replaces every weight, so the backbone file is not read then)."""
    model = create_model(m, num_joints, input_size, None if m.init else resolve_weights(m.backbone_weights))
    if m.init:
        init_from_checkpoint(model, m.init)
    return model


def architecture(m: ModelConfig) -> ModelConfig:
    """`m` without the weights it loads (backbone_weights, init): for rebuilding a network whose trained
    weights come next."""
    return replace(m, backbone_weights="", init="")


def build_model(cfg: TrainConfig, num_joints: int) -> nn.Module:
    """The configured stage-1 model with its weights loaded (`build_network`)."""
    return build_network(cfg.model, num_joints, cfg.data.input_size)


def make_optimizer(model: nn.Module, o: OptimConfig, total_steps: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdaGrad (the paper: constant lr) or AdamW with linear warm-up and cosine decay, stepped per batch; AdamW's
    backbone parameters at `o.backbone_lr` x lr, and no weight decay on biases and norms."""
    if o.name == "adagrad":
        opt: torch.optim.Optimizer = torch.optim.Adagrad(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    if o.name != "adamw":
        raise DeepPoseError(None, f"config optim.name: unknown optimizer {o.name!r} (adamw, adagrad)")
    if not 0 <= o.backbone_lr <= 1:
        raise DeepPoseError(None, f"config optim.backbone_lr: {o.backbone_lr} is not a fraction in [0, 1]")
    # groups (backbone?, decay?), decay first: with backbone_lr 1 the two of earlier versions, so their runs resume
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for n, p in model.named_parameters():
        in_backbone = o.backbone_lr != 1.0 and ".backbone." in "." + n
        groups.setdefault((in_backbone, p.ndim > 1), []).append(p)
    order = sorted(groups, key=lambda key: (key[0], not key[1]))
    opt = torch.optim.AdamW([{"params": groups[key], "weight_decay": o.weight_decay if key[1] else 0.0,
                              "lr": o.lr * (o.backbone_lr if key[0] else 1.0)} for key in order], lr=o.lr)
    warmup = max(0, min(o.warmup_steps, total_steps // 2))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def make_objective(cfg: TrainConfig, model: ModelConfig, loss: str, heatmap: HeatmapLossConfig, key: str
                   ) -> Callable[[HeadOutput, torch.Tensor], torch.Tensor]:
    """The per-joint training loss of `model`'s head (`heads.objective`), after checking it and `cfg.loss_mask`
    (`key`: the config key of the loss, for the error message)."""
    if cfg.loss_mask not in ("labelled", "visible"):
        raise DeepPoseError(None, f"config loss_mask: {cfg.loss_mask!r} is not 'labelled' or 'visible'")
    return objective(model.head, loss, heatmap, key)


def loss_mask(cfg: TrainConfig, item: dict[str, Any]) -> torch.Tensor:
    """(B, K) bool: the joints the loss counts (`loss_mask`: labelled, or visible only)."""
    return item["labelled"] if cfg.loss_mask == "labelled" else item["visible"]
