"""Training on one and on two processes (torchrun, DistributedDataParallel over gloo) on this machine's cores.

Speed: `deeppose train` for a fixed number of steps of the same effective batch (one process at batch B, or two at
B/2 each with the linear lr rule, so the same lr), images/s of the training loop as the run reports it, and the
ratio to one process with all the cores' threads. Accuracy: the same schedule (epochs, effective batch, lr) on one
process with two seeds (the noise) and on two processes, their validation PCK@0.2.

    python benchmarks/distributed.py --steps 40 --accuracy-epochs 1 --name distributed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CASES = {  # name -> (processes, threads per process)
    "1 process x 2 threads": (1, 2),
    "1 process x 1 thread": (1, 1),
    "2 processes x 1 thread": (2, 1),
}


def train(processes: int, threads: int, config: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """One `deeppose train` run; its FitResult (the JSON line it prints)."""
    launch = [sys.executable, "-m", "deeppose"] if processes == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
         "-m", "deeppose"]
    env = {**{k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")},
           "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([*launch, "train", "--config", config, *overrides, "--out", str(out)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"training failed ({processes} x {threads}):\n{done.stderr[-3000:]}")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mobilenet_v2_dsnt_cpu.yaml")
    parser.add_argument("--batch", type=int, default=32, help="the effective batch")
    parser.add_argument("--steps", type=int, default=40, help="steps per speed run")
    parser.add_argument("--accuracy-epochs", type=float, default=0, help="epochs of each accuracy run (0: none)")
    parser.add_argument("--name", default="distributed")
    args = parser.parse_args()
    from common import write_result

    speed, accuracy = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for case, (processes, threads) in CASES.items():
            b = args.batch // processes
            r = train(processes, threads, args.config, Path(tmp) / f"speed{processes}{threads}",
                      [f"optim.batch_size={b}", f"optim.lr={1e-3 / processes:g}", "--stop-after-steps",
                       str(args.steps)])
            speed[case] = {"processes": processes, "threads_per_process": threads, "batch_per_process": b,
                           "steps": r["steps"], "images_per_s": r["images_per_s"]}
            print(case, speed[case], flush=True)
        base = speed["1 process x 2 threads"]["images_per_s"]
        for row in speed.values():
            row["ratio"] = round(row["images_per_s"] / base, 3)
        if args.accuracy_epochs:
            for case, processes, seed in (("1 process, seed 0", 1, 0), ("1 process, seed 1", 1, 1),
                                          ("2 processes, seed 0", 2, 0)):
                r = train(processes, 2 // processes, args.config, Path(tmp) / f"acc{processes}{seed}",
                          [f"optim.batch_size={args.batch // processes}", f"optim.lr={1e-3 / processes:g}",
                           f"epochs={args.accuracy_epochs:g}", f"seed={seed}", "max_minutes=0",
                           "optim.warmup_steps=50"])
                accuracy[case] = {"processes": processes, "seed": seed, "val_pck": round(r["best_val_pck"], 4),
                                  "train_minutes": round(r["train_seconds"] / 60, 1), "steps": r["steps"]}
                print(case, accuracy[case], flush=True)
    command = " ".join(["python", "benchmarks/distributed.py", *sys.argv[1:]])
    path = write_result(args.name, {"config": args.config, "effective_batch": args.batch,
                                    "lr": "1e-3 for the effective batch (two processes: 5e-4 x 2, linear rule)",
                                    "speed": speed, "accuracy": accuracy,
                                    "accuracy_epochs": args.accuracy_epochs}, command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
