"""The training loop: `fit(cfg, out)` trains a stage (a `StageTask`) resumably, validating and keeping the best.

Every random draw depends on (seed, epoch, position) and the torch RNG state is checkpointed, so a run killed at
any checkpoint and resumed with `resume=True` ends with the same weights as an uninterrupted one.

    result = fit(cfg, "runs/x")           # -> FitResult: best validation PCK, best.pt and last.pt, steps, time
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
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from deeppose.config import TrainConfig
from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import CropDataset
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
        crops: the training CropDataset (its epoch is set by `fit`).
        loss: batch dict of `crops` -> scalar loss tensor (forward pass included).
        validate: () -> {"val_pck": ..., "val_pcp": ...} of the current weights (leaves train mode on).
        meta: what its checkpoints say about the model (`provenance["config"]` identifies the run).
    """

    model: nn.Module
    crops: CropDataset
    loss: Callable[[dict[str, Any]], torch.Tensor]
    validate: Callable[[], dict[str, float]]
    meta: ModelMeta


@dataclass
class FitResult:
    """What `fit` trained.

    Attributes:
        out, best, last: the run folder, its best validated checkpoint (None if none was validated yet) and its
            resumable one.
        best_val_pck: the best validation PCK so far (-1 before any validation).
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
    """A training run in progress: its task, optimizer and where it stands (what `last.pt` resumes)."""

    cfg: TrainConfig
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


def start_run(cfg: TrainConfig, out: Path, resume: bool,
              make_task: Callable[[TrainConfig, PoseDataset, PoseDataset], StageTask]) -> Run:
    """Check the run folder, build the task and its optimizer, and restore `out/last.pt` when resuming (same
    config required); a new run writes out/config.json."""
    if not 0 < cfg.epochs < float("inf"):
        raise DeepPoseError(None, f"config epochs: expected a positive number of epochs, got {cfg.epochs!r}")
    last = out / "last.pt"
    if out.exists() and any(out.iterdir()) and not resume:
        raise DeepPoseError(out, "run folder is not empty; pass --resume to continue it or choose another --out")
    if resume and not last.is_file():
        raise DeepPoseError(last, "nothing to resume: no checkpoint in this run folder")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    train, val = build_datasets(cfg.data, cfg.seed)
    task = make_task(cfg, train, val)
    steps_per_epoch = len(train) // cfg.optim.batch_size
    if steps_per_epoch == 0:
        raise DeepPoseError(None, f"{len(train)} training images are fewer than one batch of {cfg.optim.batch_size}")
    total_steps = max(1, round(cfg.epochs * steps_per_epoch))
    opt, sched = make_optimizer(task.model, cfg.optim, total_steps)
    run = Run(cfg, out, task, opt, sched, steps_per_epoch, total_steps, count_parameters(task.model))
    if resume:
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
    print(f"training {task.meta.kind} {task.meta.model.arch if task.meta.model else ''} ({run.n_parameters / 1e6:.2f}M "
          f"parameters) on {len(train)} images ({train.name}), validating on {len(val)}; {cfg.epochs:g} epochs x "
          f"{steps_per_epoch} steps = {total_steps} steps")
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
    run.bar.write(f"epoch {at:g}/{run.cfg.epochs:g}: val PCK@{run.cfg.val_alpha:g} {metrics['val_pck']:.4f}  "
                  f"PCP {metrics['val_pcp']:.4f}")
    improved = metrics["val_pck"] > run.best
    run.best = max(run.best, metrics["val_pck"])
    run.save(run.out / "last.pt")
    if improved:
        copy_file(run.out / "last.pt", run.out / "best.pt")


def train_one_epoch(run: Run, stop_after_steps: int, progress: bool, counters: dict[str, Any]) -> bool:
    """Train the steps left in the current epoch (from a mid-epoch resume point too), logging and checkpointing
    on the way; True when the run must stop early (`stop_after_steps` of this call, or its time budget).

    `counters` carries this call's "steps", "images", "rows" (train_log rows not yet written), "last_line"."""
    cfg, batch = run.cfg, run.cfg.optim.batch_size
    run.task.crops.set_epoch(run.epoch)
    in_epoch = run.step - run.epoch * run.steps_per_epoch
    # The loader gets its own generator: drawing worker seeds from the global RNG would shift the dropout masks
    # of a resumed run.
    loader = DataLoader(run.task.crops, batch_size=batch, drop_last=True, num_workers=cfg.data.num_workers,
                        sampler=EpochSampler(len(run.task.crops), cfg.seed, run.epoch, in_epoch * batch),
                        generator=torch.Generator().manual_seed(cfg.seed + run.epoch))
    for item in loader:
        loss = run.task.loss(item)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(run.task.model.parameters(), cfg.optim.grad_clip)
        run.opt.step()
        run.sched.step()
        run.step += 1
        counters["steps"] += 1
        counters["images"] += len(item["index"])
        _log_step(run, loss.item(), progress, counters)
        out_of_time = cfg.max_minutes > 0 and run.seconds() > cfg.max_minutes * 60
        if (stop_after_steps and counters["steps"] >= stop_after_steps) or out_of_time:
            counters["out_of_time"] = out_of_time
            return True
        if run.step >= run.total_steps:  # the end of a fractional last epoch
            return False
        if time.perf_counter() - run.last_checkpoint > cfg.checkpoint_minutes * 60 and run.step % run.steps_per_epoch:
            _append_csv(run.out / "train_log.csv", counters["rows"])
            counters["rows"] = []
            run.save(run.out / "last.pt")
    return False


def _log_step(run: Run, loss: float, progress: bool, counters: dict[str, Any]) -> None:
    """The progress bar, a status line every STATUS_LINE_SECONDS without one, and a train_log row every
    TRAIN_LOG_EVERY steps."""
    elapsed = time.perf_counter() - run.start
    lr = run.opt.param_groups[0]["lr"]
    speed = counters["images"] / elapsed
    run.bar.update(1)
    run.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{speed:.1f}")
    if not progress and time.perf_counter() - counters["last_line"] > STATUS_LINE_SECONDS:
        counters["last_line"] = time.perf_counter()
        eta = (run.total_steps - run.step) * elapsed / counters["steps"]
        print(f"step {run.step}/{run.total_steps} epoch {run.epoch + 1}/{math.ceil(run.cfg.epochs)} loss {loss:.4f} "
              f"lr {lr:.2e} {speed:.1f} img/s ETA {eta / 60:.0f} min", flush=True)
    if run.step % TRAIN_LOG_EVERY == 0:
        counters["rows"].append({"step": run.step, "epoch": run.epoch, "loss": round(loss, 6), "lr": lr,
                                 "images_per_s": round(speed, 2), "seconds": round(run.seconds_before + elapsed, 1)})
        run.writer.add_scalar("train/loss", loss, run.step)
        run.writer.add_scalar("train/lr", lr, run.step)


def fit(cfg: TrainConfig, out: str | Path, resume: bool = False, stop_after_steps: int = 0,
        progress: bool = True, make_task: Callable[[TrainConfig, PoseDataset, PoseDataset], StageTask] | None = None
        ) -> FitResult:
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
            stage 1 (`train.stage1.stage1_task`), `train.cascade` passes a refinement stage.
    """
    from torch.utils.tensorboard import SummaryWriter

    if make_task is None:
        from deeppose.train.stage1 import stage1_task as make_task
    out = Path(out)
    run = start_run(cfg, out, resume, make_task)
    run.writer = SummaryWriter(str(out / "tb"))
    run.bar = tqdm(total=run.total_steps, initial=run.step, desc="training", unit="step", disable=not progress,
                   dynamic_ncols=True)
    run.start = run.last_checkpoint = time.perf_counter()
    counters: dict[str, Any] = {"steps": 0, "images": 0, "rows": [], "last_line": run.start, "out_of_time": False}
    run.task.model.train()
    stopped = False
    while run.step < run.total_steps and not stopped:
        stopped = train_one_epoch(run, stop_after_steps, progress, counters)
        spe = run.steps_per_epoch
        if run.step % spe == 0 and run.step > 0 and run.step // spe > run.epoch:
            run.epoch = run.step // spe
            validate(run)
        elif (run.step >= run.total_steps or stopped and counters["out_of_time"]) and run.step > run.epoch * spe:
            validate(run)  # a partial last epoch, or a budget cut mid-epoch
    run.bar.close()
    _append_csv(out / "train_log.csv", counters["rows"])
    if stopped:
        run.save(out / "last.pt")
    run.writer.close()
    elapsed = time.perf_counter() - run.start
    return FitResult(out, out / "best.pt" if (out / "best.pt").is_file() else None, out / "last.pt", run.best,
                     run.step, run.epoch, stopped, round(elapsed, 1), round(run.seconds_before + elapsed, 1),
                     round(counters["images"] / max(elapsed, 1e-9), 2), run.n_parameters)
