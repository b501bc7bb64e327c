"""How much CPU other processes took while this one measured something.

A throughput probe on a busy machine reads low and plans too short a training budget, so the comparison checks
the machine was idle while it probed:

    before = cpu_sample()
    images_per_s = probe(...)
    cores = other_cores(before, cpu_sample())   # 0.0 on an idle machine, ~1.0 beside one busy process
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuSample:
    """CPU-time counters at one instant (seconds).

    Attributes:
        system_busy: CPU time every process on the machine has used (user, nice, system, irq, softirq; not idle,
            I/O wait or time stolen by a hypervisor).
        own: CPU time this process (all its threads) has used.
        wall: a monotonic clock.
    """

    system_busy: float
    own: float
    wall: float


def cpu_sample() -> CpuSample:
    """The machine's and this process's CPU-time counters now."""
    machine = psutil.cpu_times()
    busy = sum(getattr(machine, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "interrupt"))
    own = psutil.Process().cpu_times()
    return CpuSample(busy, own.user + own.system, time.perf_counter())


def other_cores(before: CpuSample, after: CpuSample) -> float:
    """Average number of cores that processes other than this one kept busy between two samples (>= 0)."""
    wall = after.wall - before.wall
    if wall <= 0:
        return 0.0
    others = (after.system_busy - before.system_busy) - (after.own - before.own)
    return max(0.0, others / wall)
