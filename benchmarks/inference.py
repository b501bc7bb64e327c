"""Inference speed and memory of a checkpoint: ms/image at batch 1 on 1 thread, images/s at batch 32 on 2
threads, and the peak resident memory of a process doing only that (each case in a fresh subprocess).

    python benchmarks/inference.py --checkpoint models/deeppose_mobilenet_v2_lsp.pt --name inference_mobilenet_v2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from common import write_result


def measure(checkpoint: str, batch: int, threads: int, repeats: int, flip: bool) -> dict:
    """Runs inside the subprocess: time the Predictor's forward on uint8 crops."""
    from deeppose.inference import Predictor

    torch.set_num_threads(threads)
    predictor = Predictor.from_checkpoint(checkpoint, flip=flip)
    size = predictor.input_size
    x = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8)
    times = []
    with torch.inference_mode():
        for _ in range(5):
            predictor(x)
        for _ in range(repeats):
            start = time.perf_counter()
            predictor(x)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"batch": batch, "threads": threads, "flip": flip, "input_size": size, "repeats": repeats,
            "ms_per_batch_median": round(median * 1e3, 3), "ms_per_image": round(median * 1e3 / batch, 3),
            "images_per_s": round(batch / median, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--worker", nargs=4, metavar=("BATCH", "THREADS", "REPEATS", "FLIP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        b, t, r, f = args.worker
        print(json.dumps(measure(args.checkpoint, int(b), int(t), int(r), f == "1")))
        return 0
    cases = [(1, 1, 100, 0), (32, 2, 20, 0), (1, 1, 100, 1), (32, 2, 20, 1)]
    results = []
    for b, t, r, f in cases:
        out = subprocess.run([sys.executable, __file__, "--checkpoint", args.checkpoint, "--name", args.name,
                              "--worker", str(b), str(t), str(r), str(f)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1])
    path = write_result(args.name, {"checkpoint": args.checkpoint, "cases": results}, " ".join(["python"] + sys.argv))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
