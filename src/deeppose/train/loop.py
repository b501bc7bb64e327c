"""The training loop: a task (`StageTask`) trained resumably on a `Schedule`, validated, its best kept.

    result = fit(cfg, "runs/x")           # stage 1 (or a cascade stage) from a TrainConfig -> FitResult
    result = run_task(task, schedule, "runs/y")   # any task: the person localizer trains so

Every random draw depends on (seed, epoch, position) and the torch RNG state is checkpointed, so a run killed at
any checkpoint and resumed with `resume=True` ends with the same weights as an uninterrupted one.

Under torchrun (`train.distributed`) every process trains its shard of each epoch through DistributedDataParallel,
and rank 0 alone validates, logs and writes; the same guarantee holds with the same number of processes.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from deeppose.config import TrainConfig
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.files import copy_file
from deeppose.train import distributed
from deeppose.train.builders import build_datasets
from deeppose.train.run import Run, Schedule, StageTask, epoch_loader, start_run, train_step

TRAIN_LOG_EVERY = 10  # steps between rows of train_log.csv
STATUS_LINE_SECONDS = 60.0  # without a progress bar (output to a file), one status line this often


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


def _append_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    new = not path.is_file()
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def check_run_folder(out: Path, resume: bool, epochs: float) -> None:
    """Refuse, before anything is written: a number of epochs that is not positive and finite, a folder with a run
    in it unless resuming, and resuming where there is nothing to resume."""
    if not 0 < epochs < float("inf"):
        raise DeepPoseError(None, f"config epochs: expected a positive number of epochs, got {epochs!r}")
    if out.exists() and any(out.iterdir()) and not resume:
        raise DeepPoseError(out, "run folder is not empty; pass --resume to continue it or choose another --out")
    if resume and not (out / "last.pt").is_file():
        raise DeepPoseError(out / "last.pt", "nothing to resume: no checkpoint in this run folder")


def validate(run: Run) -> None:
    """Validate the current weights (rank 0), log them, checkpoint last.pt and copy it to best.pt if it improved."""
    improved = False
    if run.world.is_main:
        metrics = run.task.validate()
        spe = run.steps_per_epoch
        at = run.step // spe if run.step % spe == 0 else round(run.step / spe, 2)
        _append_csv(run.out / "val_log.csv", [{"epoch": at, "step": run.step,
                                               **{k: round(v, 5) for k, v in metrics.items()},
                                               "seconds": round(run.seconds(), 1)}])
        for k, v in metrics.items():
            run.writer.add_scalar(f"val/{k}", v, run.step)
        run.bar.write(f"epoch {at:g}/{run.schedule.epochs:g}: " + "  ".join(f"{k} {v:.4f}"
                                                                            for k, v in metrics.items()))
        value = metrics[run.task.select]
        improved = value > run.best
        run.best = max(run.best, value)
    run.save(run.out / "last.pt")
    if improved:
        copy_file(run.out / "last.pt", run.out / "best.pt", durable=True)


def train_one_epoch(run: Run, stop_after_steps: int, progress: bool) -> bool:
    """Train the steps left in the current epoch (from a mid-epoch resume point too), logging and checkpointing
    on the way; True when the run must stop early (`stop_after_steps` of this call, or its time budget). With
    several processes, rank 0's clock decides for all."""
    s = run.schedule
    run.task.crops.set_epoch(run.epoch)
    for item in epoch_loader(run, run.step - run.epoch * run.steps_per_epoch):
        loss = train_step(run, item)
        run.step += 1
        run.steps_run += 1
        run.images_seen += len(item["index"]) * run.world.size
        due = time.perf_counter() - run.last_checkpoint > s.checkpoint_minutes * 60
        late = s.max_minutes > 0 and run.seconds() > s.max_minutes * 60
        value, (run.out_of_time, due) = distributed.consensus(run.world, loss.item(), [late, due])
        _log_step(run, value, progress)
        if (stop_after_steps and run.steps_run >= stop_after_steps) or run.out_of_time:
            return True
        if run.step >= run.total_steps:  # the end of a fractional last epoch
            return False
        if due and run.step % run.steps_per_epoch:
            if run.world.is_main:
                _append_csv(run.out / "train_log.csv", run.log_rows)
            run.log_rows = []
            run.save(run.out / "last.pt")
    return False


def _log_step(run: Run, loss: float, progress: bool) -> None:
    """On rank 0: the progress bar, a status line every STATUS_LINE_SECONDS without one, and a train_log row
    every TRAIN_LOG_EVERY steps."""
    if not run.world.is_main:
        return
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
    distributed.world().barrier()  # every process checked the folder before rank 0 writes to it
    run = start_run(task, schedule, out, resume)
    main = run.world.is_main
    run.writer = SummaryWriter(str(out / "tb")) if main else None
    run.bar = tqdm(total=run.total_steps, initial=run.step, desc="training", unit="step",
                   disable=not (progress and main), dynamic_ncols=True)
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
    if stopped:
        run.save(out / "last.pt")
    if main:
        _append_csv(out / "train_log.csv", run.log_rows)
        run.writer.close()
    run.world.barrier()  # rank 0's files are whole before any process reads them
    run.best = distributed.share_from_main(run.world, run.best)
    elapsed = time.perf_counter() - run.start
    return FitResult(out, out / "best.pt" if (out / "best.pt").is_file() else None, out / "last.pt", run.best,
                     run.step, run.epoch, stopped, round(elapsed, 1), round(run.seconds_before + elapsed, 1),
                     round(run.images_seen / max(elapsed, 1e-9), 2), run.n_parameters)
