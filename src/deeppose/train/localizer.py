"""Training the person localizer on whole photos (zoom-out and nobody views), resumable, selected on validation.

The fixed validation splits: LSP's 200 (the same carve-out as every stage-1 run, `train.builders.build_datasets`) and
`lspet_val_size` whole LSPET photos chosen by a permutation of the seed and excluded from training
(`whole_image_splits`). Selection: the mean of the localizer's own whole-image PCK@0.2 on the two.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from deeppose.config import DataConfig, HeatmapLossConfig, ModelConfig, OptimConfig, build_config
from deeppose.data.lsp import lspet_val_indices
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.data.whole_image import WholeImageDataset, ZoomOut
from deeppose.errors import DeepPoseError
from deeppose.eval.metrics import pck
from deeppose.heads import HeadOutput, objective
from deeppose.heads.losses import masked_mean
from deeppose.models.checkpoint import init_from_checkpoint
from deeppose.models.factory import create_model
from deeppose.models.localizer import PersonLocalizer
from deeppose.models.meta import BoxRule, ModelMeta, upgrade_localizer_config_1_to_2
from deeppose.paths import data_root
from deeppose.serve.batch import crops_to_image
from deeppose.train.builders import build_datasets
from deeppose.train.loop import FitResult, check_run_folder, run_task
from deeppose.train.run import Schedule, StageTask


@dataclass
class LocalizerConfig:
    """A localizer training run.

    Attributes:
        init: a stage-1 checkpoint (DSNT head) to start the network from ("" starts from `model`'s backbone
            weights).
        model: the network (a heatmap-pyramid head).
        root: folder holding lsp/ and lspet/ ("" -> $DEEPPOSE_DATA).
        lsp_val_size, lspet_val_size: the validation carve-outs (see module doc).
        input_size: side of the squared whole image the localizer sees.
        zoom: how training views are drawn.
        heatmap: the DSNT loss's regularizer.
        presence_weight: weight of the presence cross-entropy next to the joints' loss.
        optim: AdamW, linear warm-up, cosine decay.
        epochs: passes over the training photos (fractional: the last one cut short).
        max_minutes: training-time safety stop, summed over resumed calls.
        checkpoint_minutes: `last.pt` this often inside an epoch.
        num_workers: DataLoader processes.
        seed: every random draw depends on (seed, epoch, index).
        device, precision: as `TrainConfig`'s.
    """

    init: str = "models/deeppose_mobilenet_v2_lsp.pt"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(arch="mobilenet_v2", head="dsnt", stride=8,
                                                                   reduce=64, dropout=0.1, channels_last=True))
    root: str = ""
    lsp_val_size: int = 200
    lspet_val_size: int = 500
    input_size: int = 160
    zoom: ZoomOut = field(default_factory=ZoomOut)
    heatmap: HeatmapLossConfig = field(default_factory=HeatmapLossConfig)
    presence_weight: float = 1.0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, batch_size=32, warmup_steps=100))
    epochs: float = 6.0
    max_minutes: float = 90.0
    checkpoint_minutes: float = 5.0
    num_workers: int = 1
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"


def localizer_config(data: dict[str, Any]) -> LocalizerConfig:
    """A LocalizerConfig from defaults and a nested dict of settings (e.g. {"zoom": {...}, "optim": {"lr": 3e-4}}),
    types checked (`config.build_config`); a recipe in the earlier flat layout (lr, batch_size... at the top) is
    read too (`models.meta.upgrade_localizer_config_1_to_2`)."""
    return build_config(LocalizerConfig, upgrade_localizer_config_1_to_2(data))


def whole_image_splits(root: Path, seed: int = 0, lsp_val_size: int = 200, lspet_val_size: int = 500
                       ) -> dict[str, PoseDataset]:
    """The localizer's data: {"lsp_train", "lsp_val", "lspet_train", "lspet_val"}, whole images (no boxes).

    LSP's validation images are those of every stage-1 run (`train.builders.build_datasets`, same seed); LSPET's are
    the held-out photos of `data.lsp.lspet_val_indices` (`lspet_val_size` of them; with the default 500, LSPET's
    "val" split, which no network trains on), whatever the seed.
    """
    lsp_train, lsp_val = build_datasets(DataConfig(train=["lsp:train"], root=str(root), val_size=lsp_val_size,
                                                   joints_box=[]), seed)
    lspet = load_dataset("lspet", root / "lspet", "all")
    if not 0 < lspet_val_size < len(lspet):
        raise DeepPoseError(lspet.root, f"lspet_val_size {lspet_val_size} must be in 1..{len(lspet) - 1}")
    val = lspet_val_indices(len(lspet), lspet_val_size)
    return {"lsp_train": lsp_train, "lsp_val": lsp_val,
            "lspet_train": lspet.subset(np.setdiff1d(np.arange(len(lspet)), val), "train"),
            "lspet_val": lspet.subset(val, "val")}


def build_localizer(m: ModelConfig, num_joints: int, input_size: int) -> PersonLocalizer:
    """An untrained localizer of architecture `m` (channels_last if configured)."""
    regressor = create_model(m, num_joints, input_size)
    model = PersonLocalizer(regressor)
    return model.to(memory_format=torch.channels_last) if m.channels_last else model


def localizer_meta(cfg: LocalizerConfig, skeleton: str, num_joints: int) -> ModelMeta:
    """What a localizer checkpoint says about its model: the architecture, the box rule (uncalibrated), and the
    run's config as provenance."""
    return ModelMeta("localizer", skeleton, num_joints, cfg.input_size,
                     model=replace(cfg.model, init="", backbone_weights=""), box_rule=BoxRule(cfg.zoom.box_scale),
                     provenance={"config": json.loads(json.dumps(asdict(cfg)))})


@torch.inference_mode()
def localizer_outputs(model: PersonLocalizer, dataset: WholeImageDataset, batch_size: int = 32,
                      progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the localizer over every item: ((N, K, 2) joints in image pixels, (N,) presence logits, (N,) labels)."""
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=0)
    joints, logits, labels = [], [], []
    device = next(model.parameters()).device
    for batch in tqdm(loader, desc="localizing", disable=not progress, unit="batch"):
        u, logit = model(batch["image"].to(device))
        joints.append(crops_to_image(u.cpu(), batch["affine"], dataset.input_size).numpy())
        logits.append(logit.cpu().numpy())
        labels.append(batch["presence"].numpy())
    return np.concatenate(joints), np.concatenate(logits), np.concatenate(labels)


def validate_localizer(model: PersonLocalizer, splits: dict[str, PoseDataset], input_size: int) -> dict[str, float]:
    """Whole-image PCK@0.2 of the localizer's own joints on lsp_val and lspet_val, and their mean ("score")."""
    out = {}
    for name in ("lsp_val", "lspet_val"):
        ds = splits[name]
        pred, _, _ = localizer_outputs(model, WholeImageDataset(ds, input_size))
        out[f"{name}_pck"] = pck(pred, ds.joints(), ds.labelled(), ds.skeleton)
    out["score"] = (out["lsp_val_pck"] + out["lspet_val_pck"]) / 2
    return out


def localizer_loss(model: PersonLocalizer, joint_loss: Callable[[HeadOutput, torch.Tensor], torch.Tensor],
                   batch: dict[str, torch.Tensor],
                   presence_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(joints' DSNT loss over the labelled joints in view, presence cross-entropy) of one batch."""
    out, logit = model.output(batch["image"])
    joints = masked_mean(joint_loss(out, batch["joints"]), batch["weight"])
    return joints, presence_weight * nn.functional.binary_cross_entropy_with_logits(logit, batch["presence"])


def localizer_task(cfg: LocalizerConfig, splits: dict[str, PoseDataset]) -> StageTask:
    """The localizer as a training task: zoom-out and nobody views of the training photos, the joints' DSNT loss
    plus the presence cross-entropy, selected on `validate_localizer`'s "score". Seed torch first (the new layers'
    initialization)."""
    train = PoseDataset("lsp+lspet", splits["lsp_train"].root, "train", splits["lsp_train"].skeleton,
                        splits["lsp_train"].samples + splits["lspet_train"].samples)
    model = build_localizer(cfg.model, train.skeleton.num_joints, cfg.input_size)
    if cfg.init:
        init_from_checkpoint(model.regressor, cfg.init)
    joint_loss = objective(cfg.model.head, "euclidean", cfg.heatmap)

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(localizer_loss(model, joint_loss, batch, cfg.presence_weight))

    def validate() -> dict[str, float]:
        metrics = validate_localizer(model, splits, cfg.input_size)
        model.train()
        return metrics

    return StageTask(model, WholeImageDataset(train, cfg.input_size, cfg.zoom, cfg.seed), loss, validate,
                     localizer_meta(cfg, train.skeleton.name, train.skeleton.num_joints), select="score")


def train_localizer(cfg: LocalizerConfig, out: str | Path, resume: bool = False, progress: bool = False,
                    stop_after_steps: int = 0, splits: dict[str, PoseDataset] | None = None) -> FitResult:
    """Train the localizer into `out` with the training loop (`train.loop.run_task`: config.json, last.pt,
    best.pt, train_log.csv, val_log.csv); resumable with `resume` (same config required) to the same weights.

    `splits` replaces `whole_image_splits` (tests).
    """
    out = Path(out)
    schedule = Schedule(cfg.epochs, cfg.optim, cfg.seed, cfg.num_workers, cfg.max_minutes, cfg.checkpoint_minutes,
                        cfg.device, cfg.precision)
    check_run_folder(out, resume, cfg.epochs)
    root = Path(cfg.root) if cfg.root else data_root()
    splits = splits or whole_image_splits(root, cfg.seed, cfg.lsp_val_size, cfg.lspet_val_size)
    torch.manual_seed(cfg.seed)  # the new layers' initialization and dropout
    return run_task(localizer_task(cfg, splits), schedule, out, resume, stop_after_steps, progress)
