"""The training loop: a task (`StageTask`) trained resumably on a `Schedule`, validated, its best kept.

    result = fit(cfg, "runs/x")           # stage 1 (or a cascade stage) from a TrainConfig -> FitResult
    result = run_task(task, schedule, "runs/y")   # any task: the person localizer trains so

Every random draw depends on (seed, epoch, position) and the torch RNG state is checkpointed, so a run killed at
any checkpoint and resumed with `resume=True` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from deeppose.config import OptimConfig, TrainConfig
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.files import copy_file, write_json
from deeppose.models.checkpoint import load_checkpoint, save_checkpoint
from deeppose.models.factory import count_parameters
from deeppose.models.meta import ModelMeta
from deeppose.train.builders import build_datasets, make_optimizer

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
    order's seed and loader processes, the time budget (0: none; summed over resumed calls) and how often a
    checkpoint is written inside an epoch."""

    epochs: float
    optim: OptimConfig
    seed: int = 0
    num_workers: int = 0
    max_minutes: float = 0.0
    checkpoint_minutes: float = 10.0

    @classmethod
    def of(cls, cfg: TrainConfig) -> Schedule:
        """The schedule of a training config."""
        return cls(cfg.epochs, cfg.optim, cfg.seed, cfg.data.num_workers, cfg.max_minutes, cfg.checkpoint_minutes)


@dataclass
class FitResult:
    """What `fit` trained.

    Attributes:
        out, best, last: the run folder, its best validated checkpoint (None if none was validated yet) and its
            resumable one.
        best_val_pck: the best value of the task's selection metric so far (-1 before any validation).
        steps, epochs_done, stopped_early: where the run stands.
        seconds, train_seconds: training time of this call and of the whole run (resumed calls summed).
        images_per_s, n_parameters: speed of this call and model size.
    """

    out: Path
    best: Path | None
    last: Path
    best_val_pck: float
    steps: int
    epochs_done: int
    stopped_early: bool
    seconds: float
    train_seconds: float
    images_per_s: float
    n_parameters: int

    def summary(self) -> dict[str, Any]:
        """A JSON-able dict of the result."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass
class Run:
    """A training run in progress: its task, optimizer, where it stands (what `last.pt` resumes: epoch, step,
    best, seconds_before) and this call's counters (steps_run, images_seen, log_rows not yet written)."""

    schedule: Schedule
    out: Path
    task: StageTask
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    total_steps: int
    n_parameters: int
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
        """Checkpoint the weights, optimizer, schedule, RNG state and progress to `path`."""
        meta = self.task.meta.with_provenance(epoch=self.epoch, step=self.step, best_val_pck=self.best,
                                              n_parameters=self.n_parameters, train_seconds=self.seconds())
        save_checkpoint(path, self.task.model, meta, optimizer=self.opt.state_dict(),
                        scheduler=self.sched.state_dict(), rng_torch=torch.get_rng_state())
        self.last_checkpoint = time.perf_counter()


def _append_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _run_identity(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's config without its time budget: what must match for `--resume` (a budget may be extended)."""
    if config is None:
        return None
    out = {k: v for k, v in config.items() if k not in ("max_minutes", "checkpoint_minutes")}
    if isinstance(out.get("cascade"), dict):
        out["cascade"] = {k: v for k, v in out["cascade"].items() if k != "max_minutes"}
    return out


def check_run_folder(out: Path, resume: bool, epochs: float) -> None:
    """Refuse, before anything is written: a number of epochs that is not positive and finite, a folder with a run
    in it unless resuming, and resuming where there is nothing to resume."""
    if not 0 < epochs < float("inf"):
        raise DeepPoseError(None, f"config epochs: expected a positive number of epochs, got {epochs!r}")
    if out.exists() and any(out.iterdir()) and not resume:
        raise DeepPoseError(out, "run folder is not empty; pass --resume to continue it or choose another --out")
    if resume and not (out / "last.pt").is_file():
        raise DeepPoseError(out / "last.pt", "nothing to resume: no checkpoint in this run folder")


def start_run(task: StageTask, schedule: Schedule, out: Path, resume: bool) -> Run:
    """The task's optimizer and schedule, restored from `out/last.pt` when resuming (same config required); a new
    run writes out/config.json."""
    out.mkdir(parents=True, exist_ok=True)
    batch = schedule.optim.batch_size
    steps_per_epoch = len(task.crops) // batch
    if steps_per_epoch == 0:
        raise DeepPoseError(None, f"{len(task.crops)} training images are fewer than one batch of {batch}")
    total_steps = max(1, round(schedule.epochs * steps_per_epoch))
    opt, sched = make_optimizer(task.model, schedule.optim, total_steps)
    run = Run(schedule, out, task, opt, sched, steps_per_epoch, total_steps, count_parameters(task.model))
    if resume:
        last = out / "last.pt"
        ckpt = load_checkpoint(last)
        done = ckpt["meta"].provenance
        if _run_identity(done.get("config")) != _run_identity(task.meta.provenance["config"]):
            raise DeepPoseError(last, "the run was started with another config; resume it with the same one "
                                      "(only the time budget, max_minutes, may change)")
        task.model.load_state_dict(ckpt["model"], strict=True)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_torch"])
        run.epoch, run.step, run.best = done["epoch"], done["step"], done["best_val_pck"]
        run.seconds_before = float(done.get("train_seconds", 0.0))
    else:
        write_json(out / "config.json", task.meta.provenance["config"])
    arch = f" {task.meta.model.arch}" if task.meta.model else ""
    print(f"training {task.meta.kind}{arch} ({run.n_parameters / 1e6:.2f}M parameters) on {len(task.crops)} "
          f"images; {schedule.epochs:g} epochs x {steps_per_epoch} steps = {total_steps} steps")
    return run


def validate(run: Run) -> None:
    """Validate the current weights, log them, checkpoint last.pt and copy it to best.pt if it improved."""
    metrics = run.task.validate()
    spe = run.steps_per_epoch
    at = run.step // spe if run.step % spe == 0 else round(run.step / spe, 2)
    _append_csv(run.out / "val_log.csv", [{"epoch": at, "step": run.step,
                                           **{k: round(v, 5) for k, v in metrics.items()},
                                           "seconds": round(run.seconds(), 1)}])
    for k, v in metrics.items():
        run.writer.add_scalar(f"val/{k}", v, run.step)
    run.bar.write(f"epoch {at:g}/{run.schedule.epochs:g}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    value = metrics[run.task.select]
    improved = value > run.best
    run.best = max(run.best, value)
    run.save(run.out / "last.pt")
    if improved:
        copy_file(run.out / "last.pt", run.out / "best.pt")


def train_one_epoch(run: Run, stop_after_steps: int, progress: bool) -> bool:
    """Train the steps left in the current epoch (from a mid-epoch resume point too), logging and checkpointing
    on the way; True when the run must stop early (`stop_after_steps` of this call, or its time budget)."""
    s, batch = run.schedule, run.schedule.optim.batch_size
    run.task.crops.set_epoch(run.epoch)
    in_epoch = run.step - run.epoch * run.steps_per_epoch
    # The loader gets its own generator: drawing worker seeds from the global RNG would shift the dropout masks
    # of a resumed run.
    loader = DataLoader(run.task.crops, batch_size=batch, drop_last=True, num_workers=s.num_workers,
                        sampler=EpochSampler(len(run.task.crops), s.seed, run.epoch, in_epoch * batch),
                        generator=torch.Generator().manual_seed(s.seed + run.epoch))
    for item in loader:
        loss = run.task.loss(item)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if s.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.task.model.parameters(), s.optim.grad_clip)
        run.opt.step()
        run.sched.step()
        run.step += 1
        run.steps_run += 1
        run.images_seen += len(item["index"])
        _log_step(run, loss.item(), progress)
        run.out_of_time = s.max_minutes > 0 and run.seconds() > s.max_minutes * 60
        if (stop_after_steps and run.steps_run >= stop_after_steps) or run.out_of_time:
            return True
        if run.step >= run.total_steps:  # the end of a fractional last epoch
            return False
        if time.perf_counter() - run.last_checkpoint > s.checkpoint_minutes * 60 and run.step % run.steps_per_epoch:
            _append_csv(run.out / "train_log.csv", run.log_rows)
            run.log_rows = []
            run.save(run.out / "last.pt")
    return False


def _log_step(run: Run, loss: float, progress: bool) -> None:
    """The progress bar, a status line every STATUS_LINE_SECONDS without one, and a train_log row every
    TRAIN_LOG_EVERY steps."""
    elapsed = time.perf_counter() - run.start
    lr = run.opt.param_groups[0]["lr"]
    speed = run.images_seen / elapsed
    run.bar.update(1)
    run.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
    if not progress and time.perf_counter() - run.last_line > STATUS_LINE_SECONDS:
        run.last_line = time.perf_counter()
        eta = (run.total_steps - run.step) * elapsed / run.steps_run
        epochs = math.ceil(run.schedule.epochs)
        print(f"step {run.step}/{run.total_steps} epoch {run.epoch + 1}/{epochs} loss {loss:.4f} lr {lr:.2e} "
              f"{speed:.1f} img/s ETA {eta / 60:.0f} min", flush=True)
    if run.step % TRAIN_LOG_EVERY == 0:
        run.log_rows.append({"step": run.step, "epoch": run.epoch, "loss": round(loss, 6), "lr": lr,
                             "images_per_s": round(speed, 2), "seconds": round(run.seconds_before + elapsed, 1)})
        run.writer.add_scalar("train/loss", loss, run.step)
        run.writer.add_scalar("train/lr", lr, run.step)


def fit(cfg: TrainConfig, out: str | Path, resume: bool = False, stop_after_steps: int = 0,
        progress: bool = True, make_task: Callable[[TrainConfig, PoseDataset, PoseDataset], StageTask] | None = None
        ) -> FitResult:
    """Train a stage (by default the stage-1 regressor) as configured, into `out` (see `run_task`).

    Args:
        make_task: builds the model, data, loss and validation from (cfg, train, val), the datasets of
            `cfg.data`; the default trains stage 1 (`train.stage1.stage1_task`), `train.cascade` passes a
            refinement stage.
        resume, stop_after_steps, progress: see `run_task`.
    """
    if make_task is None:
        from deeppose.train.stage1 import stage1_task as make_task
    out = Path(out)
    check_run_folder(out, resume, cfg.epochs)
    torch.manual_seed(cfg.seed)
    train, val = build_datasets(cfg.data, cfg.seed)
    return run_task(make_task(cfg, train, val), Schedule.of(cfg), out, resume, stop_after_steps, progress)


def run_task(task: StageTask, schedule: Schedule, out: str | Path, resume: bool = False, stop_after_steps: int = 0,
             progress: bool = True) -> FitResult:
    """Train `task` on `schedule` into `out`: config.json, last.pt (resumable), best.pt (best `task.select`),
    train_log.csv, val_log.csv, tb/ (TensorBoard). The caller seeds torch before building the task.

    Args:
        resume: continue from out/last.pt (same config required).
        stop_after_steps: stop with a checkpoint after this many steps of this call (0: off); the schedule is
            unchanged, so a later `resume=True` call continues exactly.
        progress: show a progress bar (loss, lr, images/s, ETA); without it a status line is printed every
            STATUS_LINE_SECONDS, for logs written to a file.
    """
    from torch.utils.tensorboard import SummaryWriter

    out = Path(out)
    check_run_folder(out, resume, schedule.epochs)
    run = start_run(task, schedule, out, resume)
    run.writer = SummaryWriter(str(out / "tb"))
    run.bar = tqdm(total=run.total_steps, initial=run.step, desc="training", unit="step", disable=not progress,
                   dynamic_ncols=True)
    run.start = run.last_checkpoint = run.last_line = time.perf_counter()
    task.model.train()
    stopped = False
    while run.step < run.total_steps and not stopped:
        stopped = train_one_epoch(run, stop_after_steps, progress)
        spe = run.steps_per_epoch
        if run.step % spe == 0 and run.step > 0 and run.step // spe > run.epoch:
            run.epoch = run.step // spe
            validate(run)
        elif (run.step >= run.total_steps or stopped and run.out_of_time) and run.step > run.epoch * spe:
            validate(run)  # a partial last epoch, or a budget cut mid-epoch
    run.bar.close()
    _append_csv(out / "train_log.csv", run.log_rows)
    if stopped:
        run.save(out / "last.pt")
    run.writer.close()
    elapsed = time.perf_counter() - run.start
    return FitResult(out, out / "best.pt" if (out / "best.pt").is_file() else None, out / "last.pt", run.best,
                     run.step, run.epoch, stopped, round(elapsed, 1), round(run.seconds_before + elapsed, 1),
                     round(run.images_seen / max(elapsed, 1e-9), 2), run.n_parameters)
