"""Shared helpers of the benchmark scripts: machine description, git commit, result files."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from deeppose.files import atomic_write

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "gpu": None, "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       cwd=Path(__file__).parent).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def result_header(name: str, command: str) -> dict:
    """What every result file starts with: benchmark name, date, commit, machine and command."""
    return {"benchmark": name, "date": datetime.date.today().isoformat(), "commit": git_commit(),
            "machine": machine(), "command": command}


def write_result(name: str, data: dict, command: str) -> Path:
    """Write benchmarks/results/<name>.json with date, commit, machine and command."""
    text = json.dumps({**result_header(name, command), **data}, indent=2) + "\n"
    return atomic_write(RESULTS / f"{name}.json", lambda tmp: tmp.write_text(text))
