"""Training the person localizer on whole photos (zoom-out and nobody views), resumable, selected on validation.

The fixed validation splits: LSP's 200 (the same carve-out as every stage-1 run, `engine.build_datasets`) and
`lspet_val_size` whole LSPET photos chosen by a permutation of the seed and excluded from training
(`whole_image_splits`). Selection: the mean of the localizer's own whole-image PCK@0.2 on the two.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from deeppose.config import DataConfig, HeatmapLossConfig, ModelConfig, OptimConfig
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.data.whole_image import WholeImageDataset, ZoomOut
from deeppose.errors import DeepPoseError
from deeppose.eval.metrics import pck
from deeppose.files import write_json
from deeppose.heads import HeadOutput, objective
from deeppose.heads.losses import masked_mean
from deeppose.models.checkpoint import init_from_checkpoint, load_checkpoint, save_checkpoint
from deeppose.models.factory import create_model
from deeppose.models.localizer import PersonLocalizer
from deeppose.models.meta import BoxRule, ModelMeta
from deeppose.paths import data_root
from deeppose.serve.batch import crops_to_image
from deeppose.train.builders import build_datasets, make_optimizer
from deeppose.train.loop import EpochSampler


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
        lr, weight_decay, batch_size, warmup_steps, min_lr_ratio: AdamW, linear warm-up, cosine decay.
        epochs: passes over the training photos (fractional: the last one cut short).
        max_minutes: training-time safety stop, summed over resumed calls.
        checkpoint_minutes: `last.pt` this often inside an epoch.
        num_workers: DataLoader processes.
        seed: every random draw depends on (seed, epoch, index).
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
    lr: float = 5e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    epochs: float = 6.0
    max_minutes: float = 90.0
    checkpoint_minutes: float = 5.0
    num_workers: int = 1
    seed: int = 0


def localizer_config(overrides: dict[str, Any]) -> LocalizerConfig:
    """A LocalizerConfig from defaults and a flat or nested dict of overrides (e.g. {"zoom": {...}, "lr": 3e-4})."""
    cfg = LocalizerConfig()
    for key, value in overrides.items():
        if key == "zoom":
            cfg.zoom = ZoomOut(**{**asdict(cfg.zoom), **value})
        elif key == "model":
            cfg.model = ModelConfig(**{**asdict(cfg.model), **value})
        elif key == "heatmap":
            cfg.heatmap = HeatmapLossConfig(**{**asdict(cfg.heatmap), **value})
        elif hasattr(cfg, key):
            setattr(cfg, key, type(getattr(cfg, key))(value))
        else:
            raise DeepPoseError(None, f"unknown localizer setting {key!r}")
    return cfg


def whole_image_splits(root: Path, seed: int = 0, lsp_val_size: int = 200, lspet_val_size: int = 500
                       ) -> dict[str, PoseDataset]:
    """The localizer's data: {"lsp_train", "lsp_val", "lspet_train", "lspet_val"}, whole images (no boxes).

    LSP's validation images are those of every stage-1 run (`engine.build_datasets`, same seed); LSPET's are
    `lspet_val_size` photos by a fixed permutation of (seed, 13).
    """
    lsp_train, lsp_val = build_datasets(DataConfig(train=["lsp:train"], root=str(root), val_size=lsp_val_size,
                                                   joints_box=[]), seed)
    lspet = load_dataset("lspet", root / "lspet", "all")
    if not 0 < lspet_val_size < len(lspet):
        raise DeepPoseError(lspet.root, f"lspet_val_size {lspet_val_size} must be in 1..{len(lspet) - 1}")
    order = np.random.default_rng([seed, 13]).permutation(len(lspet))
    return {"lsp_train": lsp_train, "lsp_val": lsp_val,
            "lspet_train": lspet.subset(np.sort(order[lspet_val_size:]), "train"),
            "lspet_val": lspet.subset(np.sort(order[:lspet_val_size]), "val")}


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
    for batch in tqdm(loader, desc="localizing", disable=not progress, unit="batch"):
        u, logit = model(batch["image"])
        joints.append(crops_to_image(u, batch["affine"], dataset.input_size).numpy())
        logits.append(logit.numpy())
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


def _start_run(cfg: LocalizerConfig, out: Path, resume: bool) -> None:
    """Write the run's config.json; a resumed run must have been started with the same settings."""
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(asdict(cfg)))
    saved = out / "config.json"
    if resume and saved.is_file() and json.loads(saved.read_text(encoding="utf-8")) != config:
        raise DeepPoseError(saved, "the run was started with another config; resume needs the same settings")
    write_json(saved, config)


def train_localizer(cfg: LocalizerConfig, out: str | Path, resume: bool = False, progress: bool = False,
                    stop_after_steps: int = 0, splits: dict[str, PoseDataset] | None = None) -> dict[str, Any]:
    """Train the localizer into `out` (config.json, last.pt, best.pt, val_log.jsonl); returns the best
    validation row (or {"stopped_at_step"} with `stop_after_steps`).

    Resumes from `out/last.pt` with `resume` (same config required); the data order and every draw depend on
    (seed, epoch, index) and the torch RNG state is checkpointed, so a resumed run ends with the same weights.
    `splits` replaces `whole_image_splits` (tests).
    """
    out = Path(out)
    _start_run(cfg, out, resume)
    root = Path(cfg.root) if cfg.root else data_root()
    splits = splits or whole_image_splits(root, cfg.seed, cfg.lsp_val_size, cfg.lspet_val_size)
    train = PoseDataset("lsp+lspet", root, "train", splits["lsp_train"].skeleton,
                        splits["lsp_train"].samples + splits["lspet_train"].samples)
    torch.manual_seed(cfg.seed)  # the new layers' initialization and dropout
    model = build_localizer(cfg.model, train.skeleton.num_joints, cfg.input_size)
    if cfg.init:
        init_from_checkpoint(model.regressor, cfg.init)
    loss = objective(cfg.model.head, "euclidean", cfg.heatmap)
    data = WholeImageDataset(train, cfg.input_size, cfg.zoom, cfg.seed)
    steps_per_epoch = max(1, len(train) // cfg.batch_size)
    total_steps = max(1, int(round(cfg.epochs * steps_per_epoch)))
    opt, sched = make_optimizer(model, OptimConfig("adamw", cfg.lr, cfg.weight_decay, cfg.batch_size,
                                                   cfg.warmup_steps, cfg.min_lr_ratio), total_steps)
    meta = localizer_meta(cfg, train.skeleton.name, train.skeleton.num_joints)
    step, best, minutes, best_row = 0, -1.0, 0.0, None
    if resume and (out / "last.pt").is_file():
        ckpt = load_checkpoint(out / "last.pt")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_torch"])
        step, best, minutes = int(ckpt["step"]), float(ckpt["best"]), float(ckpt["minutes"])
        best_row = ckpt.get("best_row")
    started, last_save = time.monotonic() - minutes * 60, time.monotonic()

    def save(path: Path, **facts: Any) -> None:
        save_checkpoint(path, model, meta.with_provenance(**facts), optimizer=opt.state_dict(),
                        scheduler=sched.state_dict(), rng_torch=torch.get_rng_state(), step=step, best=best,
                        best_row=best_row, minutes=(time.monotonic() - started) / 60)

    pbar = tqdm(total=total_steps, initial=step, disable=not progress, unit="step", desc="localizer")
    while step < total_steps:
        epoch, start = divmod(step, steps_per_epoch)
        data.set_epoch(epoch)
        loader = DataLoader(data, batch_size=cfg.batch_size, drop_last=True, num_workers=cfg.num_workers,
                            sampler=EpochSampler(len(data), cfg.seed, epoch, start * cfg.batch_size),
                            generator=torch.Generator())  # leaves the global RNG (dropout) alone
        model.train()
        for batch in loader:
            joint_loss, presence_loss = localizer_loss(model, loss, batch, cfg.presence_weight)
            opt.zero_grad(set_to_none=True)
            (joint_loss + presence_loss).backward()
            opt.step()
            sched.step()
            step += 1
            pbar.update(1)
            if step % 20 == 0 and not progress:
                print(f"step {step}/{total_steps} joints {joint_loss.item():.4f} presence {presence_loss.item():.4f}"
                      f" lr {sched.get_last_lr()[0]:.2e} {(time.monotonic() - started) / 60:.1f} min", flush=True)
            if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                save(out / "last.pt")
                last_save = time.monotonic()
            if step % steps_per_epoch == 0 or step >= total_steps or step == stop_after_steps or \
                    (time.monotonic() - started) / 60 > cfg.max_minutes:
                break
        if stop_after_steps and step == stop_after_steps and step < total_steps:
            save(out / "last.pt")
            return {"stopped_at_step": step}
        row = {"epoch": epoch, "step": step, "minutes": round((time.monotonic() - started) / 60, 2),
               **validate_localizer(model, splits, cfg.input_size)}
        with open(out / "val_log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(f"validation {row}", flush=True)
        if row["score"] > best:
            best, best_row = row["score"], row
            save(out / "best.pt", validation=row)
        save(out / "last.pt")
        if (time.monotonic() - started) / 60 > cfg.max_minutes:
            break
    pbar.close()
    return best_row
