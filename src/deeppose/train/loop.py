"""Training: `fit(cfg, out)` runs a resumable stage-1 training with validation-based model selection.

Every random draw depends on (seed, epoch, position) and the torch RNG state is checkpointed, so a run
killed at any checkpoint and resumed with `resume=True` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from deeppose.config import DataConfig, HeatmapLossConfig, ModelConfig, OptimConfig, TrainConfig, to_dict
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import CropDataset
from deeppose.errors import DeepPoseError
from deeppose.eval.metrics import pck, pcp
from deeppose.eval.report import predict_dataset
from deeppose.geometry import joints_box
from deeppose.heads.base import head_output
from deeppose.heads.losses import masked_mean
from deeppose.heads.objectives import Objective
from deeppose.models.checkpoint import init_from_checkpoint, load_checkpoint, save_checkpoint
from deeppose.models.factory import count_parameters, create_model
from deeppose.paths import data_root, weights_root

TRAIN_LOG_EVERY = 10  # steps between rows of train_log.csv
STATUS_LINE_SECONDS = 60.0  # without a progress bar (output to a file), one status line this often


class EpochSampler(Sampler[int]):
    """A permutation of range(n) fixed by (seed, epoch), optionally starting part-way (for mid-epoch resume)."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        self.order = np.random.default_rng([seed, epoch, 7]).permutation(n)[start:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


def build_datasets(cfg: DataConfig, seed: int) -> tuple[PoseDataset, PoseDataset]:
    """Concatenate the `dataset:split` training entries and carve `val_size` images out of the first one.

    The validation images are chosen by a fixed permutation of `seed`, so resumed runs use the same split.
    """
    root = Path(cfg.root) if cfg.root else data_root()
    parts = []
    for entry in cfg.train:
        name, _, split = entry.partition(":")
        parts.append(load_dataset(name, root / name, split or "train"))
    skeletons = {p.skeleton.name for p in parts}
    if len(skeletons) != 1:
        raise DeepPoseError(None, f"training sets mix skeletons {sorted(skeletons)}; use one joint layout")
    for i, p in enumerate(parts):
        if p.name in cfg.joints_box:
            parts[i] = PoseDataset(p.name, p.root, p.split, p.skeleton, [
                replace(s, box=joints_box(s.joints, s.labelled, cfg.joints_box_scale).astype(np.float32))
                for s in p.samples])
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
    """A configured network with its `init` checkpoint's weights loaded, or else its backbone weights (the init
    checkpoint replaces every weight, so the backbone file is not read then); channels_last if configured."""
    backbone_weights = None if m.init else resolve_weights(m.backbone_weights)
    model = create_model(m.arch, num_joints, input_size, m.dropout, m.width, m.stride, m.reduce, m.hidden,
                         backbone_weights, m.freeze_bn, m.head, m.top_stride, m.score, m.refine)
    if m.init:
        init_from_checkpoint(model, m.init)
    return model.to(memory_format=torch.channels_last) if m.channels_last else model


def architecture(m: ModelConfig) -> ModelConfig:
    """`m` without the weights it loads (backbone_weights, init): for rebuilding a network whose trained
    weights come next."""
    return replace(m, backbone_weights="", init="")


def build_model(cfg: TrainConfig, num_joints: int) -> nn.Module:
    """The configured stage-1 model with its weights loaded (`build_network`)."""
    return build_network(cfg.model, num_joints, cfg.data.input_size)


def make_optimizer(model: nn.Module, o: OptimConfig, total_steps: int
                   ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdaGrad (the paper: constant lr) or AdamW with linear warm-up and cosine decay, stepped per batch."""
    if o.name == "adagrad":
        opt: torch.optim.Optimizer = torch.optim.Adagrad(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    if o.name != "adamw":
        raise DeepPoseError(None, f"config optim.name: unknown optimizer {o.name!r} (adamw, adagrad)")
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=o.lr)
    warmup = max(0, min(o.warmup_steps, total_steps // 2))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def model_meta(cfg: TrainConfig, num_joints: int, skeleton: str) -> dict[str, Any]:
    """The JSON-able metadata a checkpoint carries to rebuild its model."""
    return {"arch": cfg.model.arch, "model": asdict(cfg.model), "num_joints": num_joints, "skeleton": skeleton,
            "input_size": cfg.data.input_size, "config": to_dict(cfg)}


def _append_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def validate(model: nn.Module, val: PoseDataset, input_size: int, alpha: float) -> dict[str, float]:
    """Validation PCK@alpha and PCP (4-limb mean) of the current weights; leaves the model in train mode."""
    pred = predict_dataset(model, val, input_size, progress=False)
    gt, labelled = val.joints(), val.labelled()
    model.train()
    return {"val_pck": pck(pred, gt, labelled, val.skeleton, alpha),
            "val_pcp": pcp(pred, gt, labelled, val.skeleton)["mean"]}


@dataclass
class StageTask:
    """What `fit` trains: a model, its training crops, its loss on a batch, and its validation.

    Attributes:
        model: the network whose parameters are optimized.
        crops: the training CropDataset (its epoch is set by `fit`).
        loss: batch dict of `crops` -> scalar loss tensor (forward pass included).
        validate: () -> {"val_pck": ..., "val_pcp": ...} of the current weights (leaves train mode on).
        meta: JSON-able checkpoint metadata that rebuilds the model.
    """

    model: nn.Module
    crops: CropDataset
    loss: Callable[[dict[str, Any]], torch.Tensor]
    validate: Callable[[], dict[str, float]]
    meta: dict[str, Any]


def stage1_task(cfg: TrainConfig, train: PoseDataset, val: PoseDataset) -> StageTask:
    """The stage-1 regressor (Eq. 2-4): crops of the person box -> K box-normalized joints."""
    model = build_model(cfg, train.skeleton.num_joints)
    objective = make_objective(cfg, cfg.model, cfg.loss, cfg.heatmap, "loss")

    def loss(item: dict[str, Any]) -> torch.Tensor:
        images = item["image"]
        if cfg.model.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return masked_mean(objective(head_output(model, images), item["joints"]), loss_mask(cfg, item))

    return StageTask(model, CropDataset(train, cfg.data.input_size, cfg.data.augment, seed=cfg.seed), loss,
                     lambda: validate(model, val, cfg.data.input_size, cfg.val_alpha),
                     model_meta(cfg, train.skeleton.num_joints, train.skeleton.name))


def make_objective(cfg: TrainConfig, model: ModelConfig, loss: str, heatmap: HeatmapLossConfig, key: str
                   ) -> Objective:
    """The per-joint training loss of `model`'s head, after checking it and `cfg.loss_mask` (`key`: the config
    key of the loss, for the error message)."""
    if cfg.loss_mask not in ("labelled", "visible"):
        raise DeepPoseError(None, f"config loss_mask: {cfg.loss_mask!r} is not 'labelled' or 'visible'")
    return Objective(model.head, loss, heatmap, key)


def loss_mask(cfg: TrainConfig, item: dict[str, Any]) -> torch.Tensor:
    """(B, K) bool: the joints the loss counts (`loss_mask`: labelled, or visible only)."""
    return item["labelled"] if cfg.loss_mask == "labelled" else item["visible"]


def _run_identity(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's config without its time budget: what must match for `--resume` (a budget may be extended)."""
    if config is None:
        return None
    out = {k: v for k, v in config.items() if k not in ("max_minutes", "checkpoint_minutes")}
    if isinstance(out.get("cascade"), dict):
        out["cascade"] = {k: v for k, v in out["cascade"].items() if k != "max_minutes"}
    return out


def fit(cfg: TrainConfig, out: str | Path, resume: bool = False, stop_after_steps: int = 0,
        progress: bool = True, make_task: Callable[[TrainConfig, PoseDataset, PoseDataset], StageTask] = stage1_task
        ) -> dict[str, Any]:
    """Train a stage (by default the stage-1 regressor) as configured; write checkpoints and logs into `out`.

    Files: config.json, last.pt (resumable), best.pt (best validation PCK), train_log.csv, val_log.csv,
    tb/ (TensorBoard).

    Args:
        resume: continue from out/last.pt (same config required).
        stop_after_steps: stop with a checkpoint after this many steps of this call (0: off); the schedule is
            unchanged, so a later `resume=True` call continues exactly.
        progress: show a progress bar (loss, lr, images/s, ETA); without it a status line is printed every
            STATUS_LINE_SECONDS, for logs written to a file.
        make_task: builds the model, data, loss and validation from (cfg, train, val); the default trains
            stage 1, `deeppose.train.cascade` passes a refinement stage.

    Returns:
        summary dict: steps, epochs, best validation PCK, seconds of this call and of the whole run, images/s.
    """
    from torch.utils.tensorboard import SummaryWriter

    from deeppose.eval.report import write_json

    if not 0 < cfg.epochs < float("inf"):
        raise DeepPoseError(None, f"config epochs: expected a positive number of epochs, got {cfg.epochs!r}")
    out = Path(out)
    last_path = out / "last.pt"
    if out.exists() and any(out.iterdir()) and not resume:
        raise DeepPoseError(out, "run folder is not empty; pass --resume to continue it or choose another --out")
    if resume and not last_path.is_file():
        raise DeepPoseError(last_path, "nothing to resume: no checkpoint in this run folder")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train, val = build_datasets(cfg.data, cfg.seed)
    task = make_task(cfg, train, val)
    model, crops, meta = task.model, task.crops, task.meta
    batch = cfg.optim.batch_size
    steps_per_epoch = len(train) // batch
    if steps_per_epoch == 0:
        raise DeepPoseError(None, f"{len(train)} training images are fewer than one batch of {batch}")
    total_steps = max(1, round(cfg.epochs * steps_per_epoch))
    opt, sched = make_optimizer(model, cfg.optim, total_steps)
    epoch, step, best, seconds_before = 0, 0, -1.0, 0.0
    if resume:
        ckpt = load_checkpoint(last_path)
        if _run_identity(ckpt["meta"].get("config")) != _run_identity(meta["config"]):
            raise DeepPoseError(last_path, "the run was started with another config; resume it with the same one "
                                           "(only the time budget, max_minutes, may change)")
        model.load_state_dict(ckpt["model"], strict=True)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_torch"])
        epoch, step, best = ckpt["meta"]["epoch"], ckpt["meta"]["step"], ckpt["meta"]["best_val_pck"]
        seconds_before = float(ckpt["meta"].get("train_seconds", 0.0))
    else:
        write_json(out / "config.json", meta["config"])
    writer = SummaryWriter(str(out / "tb"))
    n_params = count_parameters(model)
    print(f"training {meta.get('kind', cfg.model.arch)} ({n_params / 1e6:.2f}M parameters) on {len(train)} images "
          f"({train.name}), validating on {len(val)}; {cfg.epochs:g} epochs x {steps_per_epoch} steps = "
          f"{total_steps} steps")

    def checkpoint(path: Path, best: float) -> None:
        save_checkpoint(path, model, {**meta, "epoch": epoch, "step": step, "best_val_pck": best,
                                      "n_parameters": n_params,
                                      "train_seconds": seconds_before + time.perf_counter() - start},
                        optimizer=opt.state_dict(),
                        scheduler=sched.state_dict(), rng_torch=torch.get_rng_state())

    def validate_and_keep_best(best: float) -> float:
        """Validate the current weights, log them, checkpoint last.pt and copy it to best.pt if it improved."""
        nonlocal last_ckpt
        metrics = task.validate()
        at = step // steps_per_epoch if step % steps_per_epoch == 0 else round(step / steps_per_epoch, 2)
        _append_csv(out / "val_log.csv", [{"epoch": at, "step": step, **{k: round(v, 5) for k, v in metrics.items()},
                                           "seconds": round(seconds_before + time.perf_counter() - start, 1)}])
        for k, v in metrics.items():
            writer.add_scalar(f"val/{k}", v, step)
        bar.write(f"epoch {at:g}/{cfg.epochs:g}: val PCK@{cfg.val_alpha:g} {metrics['val_pck']:.4f}  "
                  f"PCP {metrics['val_pcp']:.4f}")
        improved = metrics["val_pck"] > best
        best = max(best, metrics["val_pck"])
        checkpoint(last_path, best)
        last_ckpt = time.perf_counter()
        if improved:
            shutil.copyfile(last_path, out / ".best.pt.tmp")
            (out / ".best.pt.tmp").replace(out / "best.pt")
        return best

    start = time.perf_counter()
    last_ckpt = last_line = start
    steps_run, images_seen, stopped, out_of_time = 0, 0, False, False
    bar = tqdm(total=total_steps, initial=step, desc="training", unit="step", disable=not progress,
               dynamic_ncols=True)
    model.train()
    rows: list[dict[str, Any]] = []
    while step < total_steps and not stopped:
        crops.set_epoch(epoch)
        in_epoch = step - epoch * steps_per_epoch
        # The loader gets its own generator: drawing worker seeds from the global RNG would shift the
        # dropout masks of a resumed run.
        sampler = EpochSampler(len(crops), cfg.seed, epoch, in_epoch * batch)
        loader = DataLoader(crops, batch_size=batch, sampler=sampler, drop_last=True, num_workers=cfg.data.num_workers,
                            generator=torch.Generator().manual_seed(cfg.seed + epoch))
        for item in loader:
            loss = task.loss(item)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            sched.step()
            step, steps_run, images_seen = step + 1, steps_run + 1, images_seen + len(item["index"])
            elapsed = time.perf_counter() - start
            lr = opt.param_groups[0]["lr"]
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", img_s=f"{images_seen / elapsed:.1f}")
            if not progress and time.perf_counter() - last_line > STATUS_LINE_SECONDS:
                last_line = time.perf_counter()
                eta = (total_steps - step) * elapsed / steps_run
                print(f"step {step}/{total_steps} epoch {epoch + 1}/{math.ceil(cfg.epochs)} loss {loss.item():.4f} "
                      f"lr {lr:.2e} {images_seen / elapsed:.1f} img/s ETA {eta / 60:.0f} min", flush=True)
            if step % TRAIN_LOG_EVERY == 0:
                rows.append({"step": step, "epoch": epoch, "loss": round(loss.item(), 6), "lr": lr,
                             "images_per_s": round(images_seen / elapsed, 2),
                             "seconds": round(seconds_before + elapsed, 1)})
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/lr", lr, step)
            out_of_time = cfg.max_minutes > 0 and seconds_before + elapsed > cfg.max_minutes * 60
            if (stop_after_steps and steps_run >= stop_after_steps) or out_of_time:
                stopped = True
                break
            if step >= total_steps:  # the end of a fractional last epoch
                break
            if time.perf_counter() - last_ckpt > cfg.checkpoint_minutes * 60 and step % steps_per_epoch:
                _append_csv(out / "train_log.csv", rows)
                rows = []
                checkpoint(last_path, best)
                last_ckpt = time.perf_counter()
        if step % steps_per_epoch == 0 and step > 0 and step // steps_per_epoch > epoch:
            epoch = step // steps_per_epoch
            best = validate_and_keep_best(best)
        elif (step >= total_steps or stopped and out_of_time) and step > epoch * steps_per_epoch:
            best = validate_and_keep_best(best)  # a partial last epoch, or a budget cut mid-epoch
    bar.close()
    _append_csv(out / "train_log.csv", rows)
    if stopped:
        checkpoint(last_path, best)
    writer.close()
    elapsed = time.perf_counter() - start
    return {"steps": step, "epochs_done": epoch, "stopped_early": stopped, "best_val_pck": best,
            "seconds": round(elapsed, 1), "train_seconds": round(seconds_before + elapsed, 1),
            "images_per_s": round(images_seen / max(elapsed, 1e-9), 2),
            "n_parameters": n_params}
