"""A training run's parts: what trains (`StageTask`), on which schedule (`Schedule`), the data order of each
epoch (`EpochSampler`), the run's state on its device and processes (`Run`, restored from last.pt when resuming),
and one optimizer step (`train_step`). The loop over them is `train.loop`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from deeppose.config import OptimConfig, TrainConfig
from deeppose.errors import DeepPoseError
from deeppose.files import write_json
from deeppose.models.checkpoint import load_checkpoint, save_checkpoint
from deeppose.models.factory import count_parameters
from deeppose.models.meta import ModelMeta
from deeppose.train import distributed
from deeppose.train.builders import make_optimizer
from deeppose.train.distributed import World


class EpochSampler(Sampler[int]):
    """A permutation of range(n) fixed by (seed, epoch), optionally starting part-way (for mid-epoch resume).

    With `size` processes it plays torch's DistributedSampler: the permutation, cut to a multiple of `size`, is
    dealt out in turn, and process `rank` takes every `size`-th index from its `rank`-th, so that one step of
    `size` processes at batch b sees the images one process sees at batch `size` x b.
    """

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, rank: int = 0, size: int = 1) -> None:
        order = np.random.default_rng([seed, epoch, 7]).permutation(n)
        self.order = order[: n // size * size][rank::size][start:]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


@dataclass
class StageTask:
    """What `fit` trains: a model, its training crops, its loss on a batch, and its validation.

    Attributes:
        model: the network whose parameters are optimized.
        crops: the training dataset, with `set_epoch(epoch)` (e.g. a CropDataset).
        loss: batch dict of `crops` -> scalar loss tensor (forward pass included).
        validate: () -> metrics of the current weights, e.g. {"val_pck": ..., "val_pcp": ...} (leaves train mode on).
        meta: what its checkpoints say about the model (`provenance["config"]` identifies the run).
        select: the validation metric that picks best.pt (higher is better).
    """

    model: nn.Module
    crops: Dataset
    loss: Callable[[dict[str, Any]], torch.Tensor]
    validate: Callable[[], dict[str, float]]
    meta: ModelMeta
    select: str = "val_pck"


@dataclass
class Schedule:
    """How a task trains: epochs (a fractional last one is cut short), the optimizer and batch size, the data
    order's seed and loader processes, the time budget (0: none; summed over resumed calls), how often a
    checkpoint is written inside an epoch, and the device and precision (`train.distributed`)."""

    epochs: float
    optim: OptimConfig
    seed: int = 0
    num_workers: int = 0
    max_minutes: float = 0.0
    checkpoint_minutes: float = 10.0
    device: str = "auto"
    precision: str = "auto"

    @classmethod
    def of(cls, cfg: TrainConfig) -> Schedule:
        """The schedule of a training config."""
        return cls(cfg.epochs, cfg.optim, cfg.seed, cfg.data.num_workers, cfg.max_minutes, cfg.checkpoint_minutes,
                   cfg.device, cfg.precision)


class LossModule(nn.Module):
    """A task's loss as a module (its model a submodule), so that DistributedDataParallel can wrap it: forward is
    the loss of a batch, and DDP averages the gradients of the model's parameters."""

    def __init__(self, task: StageTask) -> None:
        super().__init__()
        self.model = task.model
        self.task_loss = task.loss

    def forward(self, item: dict[str, Any]) -> torch.Tensor:
        return self.task_loss(item)


@dataclass
class Run:
    """A training run in progress: its task, optimizer, where it stands (what `last.pt` resumes: epoch, step,
    best, seconds_before), this call's counters (steps_run, images_seen, log_rows not yet written), and how it
    runs: the processes (`world`), the device, the loss module (DDP-wrapped with several processes), the autocast
    dtype (None: fp32) and the gradient scaler (fp16 only)."""

    schedule: Schedule
    out: Path
    task: StageTask
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    total_steps: int
    n_parameters: int
    world: World
    device: torch.device
    forward: nn.Module
    amp: torch.dtype | None
    scaler: torch.amp.GradScaler
    epoch: int = 0
    step: int = 0
    best: float = -1.0
    seconds_before: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    last_checkpoint: float = field(default_factory=time.perf_counter)
    last_line: float = field(default_factory=time.perf_counter)
    steps_run: int = 0
    images_seen: int = 0
    log_rows: list[dict[str, Any]] = field(default_factory=list)
    out_of_time: bool = False
    writer: Any = None
    bar: Any = None

    def seconds(self) -> float:
        """Training seconds of the whole run so far."""
        return self.seconds_before + time.perf_counter() - self.start

    def save(self, path: Path) -> None:
        """Checkpoint the weights, optimizer, schedule, RNG state(s) and progress to `path` (every process takes
        part, for its RNG state; rank 0 writes)."""
        states = distributed.gather_rng_states(self.world)
        self.last_checkpoint = time.perf_counter()
        if not self.world.is_main:
            return
        meta = self.task.meta.with_provenance(epoch=self.epoch, step=self.step, best_val_pck=self.best,
                                              n_parameters=self.n_parameters, train_seconds=self.seconds(),
                                              world_size=self.world.size)
        extra: dict[str, Any] = {"rng_torch": states[0]}
        if self.world.size > 1:
            extra["rng_torch_ranks"] = states
        if self.scaler.is_enabled():
            extra["scaler"] = self.scaler.state_dict()
        save_checkpoint(path, self.task.model, meta, optimizer=self.opt.state_dict(),
                        scheduler=self.sched.state_dict(), **extra)


def _run_identity(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's config without its time budget and device: what must match for `--resume` (a budget may be
    extended, a run may move to a GPU). Settings added since a run started count as their defaults, so runs
    started by an older version resume."""
    if config is None:
        return None
    out = {k: v for k, v in config.items() if k not in ("max_minutes", "checkpoint_minutes", "device")}
    out.setdefault("precision", "auto")
    if isinstance(out.get("optim"), dict):
        out["optim"] = {"lr_scaling": "linear", **out["optim"]}
    if isinstance(out.get("cascade"), dict):
        out["cascade"] = {k: v for k, v in out["cascade"].items() if k != "max_minutes"}
        if isinstance(out["cascade"].get("optim"), dict):
            out["cascade"]["optim"] = {"lr_scaling": "linear", **out["cascade"]["optim"]}
    return out


def start_run(task: StageTask, schedule: Schedule, out: Path, resume: bool) -> Run:
    """The task on its device, its optimizer and schedule (lr scaled for the processes), restored from
    `out/last.pt` when resuming (same config and number of processes required); a new run writes out/config.json
    (with world_size, the effective batch and lr)."""
    w = distributed.world()
    device = distributed.resolve_device(schedule.device, w)
    amp = distributed.resolve_precision(schedule.precision, device)
    if w.is_main:
        out.mkdir(parents=True, exist_ok=True)
    batch = schedule.optim.batch_size
    steps_per_epoch = len(task.crops) // w.size // batch
    if steps_per_epoch == 0:
        raise DeepPoseError(None, f"{len(task.crops)} training images are fewer than one batch of {batch} for each "
                                  f"of {w.size} process(es)")
    total_steps = max(1, round(schedule.epochs * steps_per_epoch))
    lr = distributed.scaled_lr(schedule.optim.lr, w, schedule.optim.lr_scaling)
    task.model.to(device)
    opt, sched = make_optimizer(task.model, replace(schedule.optim, lr=lr), total_steps)
    forward: nn.Module = LossModule(task)
    if w.size > 1:
        forward = nn.parallel.DistributedDataParallel(forward, device_ids=[device.index] if device.index is not None
                                                      else None)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    run = Run(schedule, out, task, opt, sched, steps_per_epoch, total_steps, count_parameters(task.model), w, device,
              forward, amp, scaler)
    if resume:
        _restore(run, out / "last.pt")
    else:
        if w.rank > 0:  # its own dropout masks; rank 0 keeps the single-process stream
            torch.manual_seed(int(np.random.default_rng([schedule.seed, w.rank, 13]).integers(2**62)))
        if w.is_main:
            write_json(out / "config.json", {**task.meta.provenance["config"], "world_size": w.size,
                                             "effective_batch": batch * w.size, "lr_effective": lr})
    if w.is_main:
        arch = f" {task.meta.model.arch}" if task.meta.model else ""
        precision = "fp32" if amp is None else str(amp).removeprefix("torch.")
        print(f"training {task.meta.kind}{arch} ({run.n_parameters / 1e6:.2f}M parameters) on {len(task.crops)} "
              f"images on {device} in {precision}; {schedule.epochs:g} epochs x {steps_per_epoch} steps = "
              f"{total_steps} steps; {w.size} process(es) x batch {batch} = effective batch {batch * w.size}, "
              f"lr {schedule.optim.lr:g} -> {lr:g} ({schedule.optim.lr_scaling})")
    return run


def _restore(run: Run, last: Path) -> None:
    """Resume `run` from `last`: weights, optimizer, schedule, this process's RNG state and progress."""
    ckpt = load_checkpoint(last)
    done = ckpt["meta"].provenance
    if _run_identity(done.get("config")) != _run_identity(run.task.meta.provenance["config"]):
        raise DeepPoseError(last, "the run was started with another config; resume it with the same one "
                                  "(only the time budget, max_minutes, may change)")
    if done.get("world_size", 1) != run.world.size:
        raise DeepPoseError(last, f"the run was trained on {done.get('world_size', 1)} process(es); resume it with "
                                  f"as many (its data order depends on them), not {run.world.size}")
    run.task.model.load_state_dict(ckpt["model"], strict=True)
    run.opt.load_state_dict(ckpt["optimizer"])
    run.sched.load_state_dict(ckpt["scheduler"])
    if "scaler" in ckpt and run.scaler.is_enabled():
        run.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["rng_torch_ranks"][run.world.rank] if run.world.size > 1 else ckpt["rng_torch"])
    run.epoch, run.step, run.best = done["epoch"], done["step"], done["best_val_pck"]
    run.seconds_before = float(done.get("train_seconds", 0.0))


def _on_device(item: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A batch's tensors on the training device (unchanged on the CPU)."""
    if device.type == "cpu":
        return item
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in item.items()}


def train_step(run: Run, item: dict[str, Any]) -> torch.Tensor:
    """One optimizer step on a batch: forward in the run's precision, backward (gradients averaged over the
    processes by DDP; scaled for fp16), optional clipping, step; the loss."""
    with distributed.autocast(run.device, run.amp):
        loss = run.forward(_on_device(item, run.device))
    run.opt.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if run.schedule.optim.grad_clip > 0:
        run.scaler.unscale_(run.opt)
        nn.utils.clip_grad_norm_(run.task.model.parameters(), run.schedule.optim.grad_clip)
    run.scaler.step(run.opt)
    run.scaler.update()
    run.sched.step()
    return loss


def epoch_loader(run: Run, in_epoch: int) -> DataLoader:
    """This process's batches of the current epoch, from step `in_epoch` on. The loader gets its own generator:
    drawing worker seeds from the global RNG would shift the dropout masks of a resumed run. On a GPU: pinned
    memory and, unless set, a loader process per core (up to 8)."""
    s, w, batch = run.schedule, run.world, run.schedule.optim.batch_size
    gpu = run.device.type == "cuda"
    workers = s.num_workers or (min(8, (os.cpu_count() or 1) // w.local_size) if gpu else 0)
    return DataLoader(run.task.crops, batch_size=batch, drop_last=True, num_workers=workers, pin_memory=gpu,
                      sampler=EpochSampler(len(run.task.crops), s.seed, run.epoch, in_epoch * batch, w.rank, w.size),
                      generator=torch.Generator().manual_seed(s.seed + run.epoch))


