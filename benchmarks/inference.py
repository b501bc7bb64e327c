"""Inference speed and memory of a checkpoint: ms/image at batch 1 (1 and 2 threads), images/s at batch 32 on 2
threads, with and without the flip test, and the peak resident memory of a process doing only that (each case
in a fresh subprocess). The "image" case times `Predictor.predict` on a 200 x 200 RGB array (the crop's
affine warp included, JPEG decoding not), the others the network on ready uint8 crops. For a cascade checkpoint
the crops come with their sources (the box at the cascade's source resolution) and every case is timed for
stage 1 alone and for the whole cascade, in alternation within one process (`ratio_to_stage1`), so the cost of
the refinement stages reads directly.

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


def measure(checkpoint: str, batch: int, threads: int, repeats: int, flip: bool, image: bool, stages: int) -> dict:
    """Runs inside the subprocess: time the Predictor on uint8 crops (or on one whole image).

    `stages` 0 runs every stage; -1 (cascades) times stage 1 alone and the whole cascade in alternation on the
    same inputs, so their ratio is not skewed by the machine's speed drifting between processes.
    """
    import numpy as np

    from deeppose.serve.predictor import Predictor

    torch.set_num_threads(threads)
    predictor = Predictor.from_checkpoint(checkpoint, flip=flip, stages=stages if stages > 0 else None)
    size = predictor.input_size
    x = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8)
    r = predictor.source_size
    sources = torch.randint(0, 255, (batch, 3, r, r), dtype=torch.uint8) if r else None
    rgb = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    predictors = [predictor]
    if stages < 0:
        predictors.insert(0, Predictor(predictor.model, predictor.meta, flip=flip, stages=1))

    def run(p: Predictor) -> float:
        start = time.perf_counter()
        if image:
            p.predict(rgb)
        else:
            p.pose.normalized(x, sources)
        return time.perf_counter() - start

    times: list[list[float]] = [[] for _ in predictors]
    with torch.inference_mode():
        for _ in range(5):
            for p in predictors:
                run(p)
        for _ in range(repeats):
            for t, p in zip(times, predictors):
                t.append(run(p))
    median = statistics.median(times[-1])
    out = {"case": "image" if image else "crops", "batch": batch, "threads": threads, "flip": flip,
           "stages": predictor.stages, "input_size": size, "repeats": repeats,
           "ms_per_batch_median": round(median * 1e3, 3), "ms_per_image": round(median * 1e3 / batch, 3),
           "images_per_s": round(batch / median, 1),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if stages < 0:
        stage1 = statistics.median(times[0])
        out |= {"stage1_ms_per_image": round(stage1 * 1e3 / batch, 3), "ratio_to_stage1": round(median / stage1, 3)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--worker", nargs=6, metavar=("BATCH", "THREADS", "REPEATS", "FLIP", "IMAGE", "STAGES"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        b, t, r, f, i, s = args.worker
        print(json.dumps(measure(args.checkpoint, int(b), int(t), int(r), f == "1", i == "1", int(s))))
        return 0
    from deeppose.models.checkpoint import load_checkpoint

    n_stages = load_checkpoint(args.checkpoint)["meta"].stages
    # (batch, threads, repeats, flip, whole image, stages; 0 = all, -1 = stage 1 and all, alternating)
    cases = [(1, 1, 100, 0, 0, 0), (1, 2, 100, 0, 0, 0), (32, 2, 20, 0, 0, 0), (1, 1, 100, 1, 0, 0),
             (32, 2, 20, 1, 0, 0), (1, 2, 100, 0, 1, 0)]
    if n_stages > 1:
        cases = [(1, 1, 100, 0, 0, -1), (1, 2, 100, 0, 0, -1), (32, 2, 20, 0, 0, -1), (1, 2, 100, 0, 1, -1)]
    results = []
    for case in cases:
        out = subprocess.run([sys.executable, __file__, "--checkpoint", args.checkpoint, "--name", args.name,
                              "--worker", *map(str, case)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1])
    path = write_result(args.name, {"checkpoint": args.checkpoint, "cases": results}, " ".join(["python"] + sys.argv))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
