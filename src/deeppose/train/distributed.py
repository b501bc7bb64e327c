"""Training on several processes, machines or GPUs: `torchrun ... -m deeppose train` (DistributedDataParallel).

Each process (rank) trains on its own shard of every epoch's order (`EpochSampler`), DDP averages the gradients,
and only rank 0 validates, logs and writes. The process group is torch.distributed's own state, read here, never
copied: `world()` describes it, single-process when there is none.

Backends are chosen automatically: gloo for CPU tensors, and NCCL for CUDA tensors when a GPU is present
("cpu:gloo,cuda:nccl"). Threads: the machine's cores are split between the processes on it.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from deeppose.errors import DeepPoseError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LR_SCALING = ("linear", "sqrt", "none")
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """The processes of a run: this one's rank among `size`, and among the `local_size` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, logs and writes."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (nothing to wait for alone)."""
        if self.size > 1:
            dist.barrier()


def world() -> World:
    """The current process group (torchrun's environment), or a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                 int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())))


def join(timeout_minutes: float = 120.0) -> World:
    """Join torchrun's process group when this process is one of several (WORLD_SIZE > 1): gloo on CPU, NCCL for
    CUDA tensors when a GPU is present; torch's threads split between the processes on this machine. A long
    `timeout_minutes`: the other ranks wait while rank 0 validates."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return world()
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():  # more processes than GPUs share them in turn
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    w = world()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // w.local_size))
    return w


def leave() -> None:
    """Leave the process group, if any, after a successful run: every process at once, and only once the
    objects still holding the group's work are collected (work alive while the interpreter finalizes can abort
    the process)."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def resolve_device(setting: str, w: World) -> torch.device:
    """`device: auto|cpu|cuda` -> this process's device (auto: its GPU when there is one, else the CPU)."""
    if setting not in DEVICES:
        raise DeepPoseError(None, f"config device: {setting!r} is not one of {', '.join(DEVICES)}")
    if setting == "cuda" and not torch.cuda.is_available():
        raise DeepPoseError(None, "config device: cuda was asked for, but torch sees no CUDA device")
    if setting == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", w.local_rank % torch.cuda.device_count())


def resolve_precision(setting: str, device: torch.device) -> torch.dtype | None:
    """`precision: auto|fp32|bf16|fp16` -> the autocast dtype (None: fp32). auto: bf16 on a GPU that has it, else
    fp16 on a GPU, fp32 on the CPU (so CPU runs stay bit-reproducible)."""
    if setting not in PRECISIONS:
        raise DeepPoseError(None, f"config precision: {setting!r} is not one of {', '.join(PRECISIONS)}")
    if setting == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[setting]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Mixed precision for the forward pass and loss (nothing in fp32)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def scaled_lr(lr: float, w: World, rule: str) -> float:
    """The learning rate for `w.size` processes, each at the configured batch: linear (lr x size, Goyal et al.
    2017), sqrt (lr x sqrt(size)) or none."""
    if rule not in LR_SCALING:
        raise DeepPoseError(None, f"config optim.lr_scaling: {rule!r} is not one of {', '.join(LR_SCALING)}")
    return lr * {"linear": w.size, "sqrt": w.size ** 0.5, "none": 1}[rule]


def consensus(w: World, loss: float, flags: list[bool]) -> tuple[float, list[bool]]:
    """One collective per step: the loss averaged over the processes, and rank 0's decisions (stop, checkpoint)
    for all, so that every process stops and checkpoints at the same step."""
    if w.size == 1:
        return loss, flags
    t = torch.tensor([loss / w.size, *(float(f) if w.is_main else 0.0 for f in flags)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t[0]), [bool(v > 0.5) for v in t[1:].tolist()]


def gather_rng_states(w: World) -> list[torch.Tensor]:
    """Every process's torch RNG state (dropout masks differ by rank), in rank order, for the checkpoint."""
    state = torch.get_rng_state()
    if w.size == 1:
        return [state]
    states: list[torch.Tensor | None] = [None] * w.size
    dist.all_gather_object(states, state)
    return [s for s in states if s is not None]


def share_from_main(w: World, value: object) -> object:
    """Rank 0's `value`, on every process."""
    if w.size == 1:
        return value
    box = [value if w.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(w: World, job: Callable[[], T]) -> T:
    """Rank 0 runs `job` (a write, a report, a measurement) while the others wait; its result, on every process.
    Alone, just `job()`."""
    return share_from_main(w, job() if w.is_main else None)  # type: ignore[return-value]
