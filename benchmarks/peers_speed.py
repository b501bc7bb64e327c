"""Speed side by side with MoveNet, one run: ms per image at batch 1 (1 and 2 threads) and images/s batched (2
threads) on the same real photos (LSP test images), end to end from a decoded RGB array to joints in pixels.

Every system runs in its own long-lived worker process (MoveNet in the peers' venv, which this project must not
depend on: see ../shared/peers/README.md), and the parent asks them for timed rounds in alternation, so a drift of
the machine's speed falls on all of them alike. The ratio to MoveNet is what to read; absolute times drift here.

    python benchmarks/peers_speed.py --peer-python /tmp/peers/bin/python \\
        --system torch=models/deeppose_movenet_person.pt --system onnx=runs/export/person.onnx \\
        --system onnx-int8=runs/export/person_int8.onnx --accuracy onnx-int8=reports/int8 --name peers_speed
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
MOVENET = HERE.parents[2] / "shared" / "peers" / "movenet_single_pose_lightning_ptq.tflite"
MOVENET_WORKER = r'''
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model, threads, folder = sys.argv[1], int(sys.argv[2]), sys.argv[3]
images = [np.load(f"{folder}/{i}.npy") for i in range(int(sys.argv[4]))]
it = Interpreter(model_path=model, num_threads=threads)
it.allocate_tensors()
inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

def letterbox(image, size=192):
    h, w = image.shape[:2]
    s = size / max(h, w)
    rows = np.minimum((np.arange(int(h * s)) / s).astype(int), h - 1)
    cols = np.minimum((np.arange(int(w * s)) / s).astype(int), w - 1)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:len(rows), :len(cols)] = image[rows][:, cols]
    return canvas

def predict(image):
    it.set_tensor(inp, letterbox(image)[None])
    it.invoke()
    return it.get_tensor(out)

for line in sys.stdin:
    n, times = int(line), []
    for k in range(n):
        image = images[k % len(images)]
        start = time.perf_counter()
        predict(image)
        times.append((time.perf_counter() - start) * 1e3)
    print(json.dumps(times), flush=True)
'''


def ours_worker(checkpoint: str, threads: int, folder: str, n_images: int, batch: int) -> None:
    """Runs in the worker process: answer each line N with N timed predictions (ms per image)."""
    import torch

    from deeppose.serve.predictor import Predictor

    torch.set_num_threads(threads)
    if checkpoint.endswith((".onnx", ".json")):
        predictor = Predictor.from_export(checkpoint, threads=threads)
    else:
        predictor = Predictor.from_checkpoint(checkpoint)
    images = [np.load(f"{folder}/{i}.npy") for i in range(n_images)]
    with torch.inference_mode():
        for line in sys.stdin:
            n, times = int(line), []
            for k in range(n):
                if batch == 1:
                    start = time.perf_counter()
                    predictor.predict(images[k % n_images])
                    times.append((time.perf_counter() - start) * 1e3)
                else:
                    chunk = [images[(k * batch + j) % n_images] for j in range(batch)]
                    start = time.perf_counter()
                    predictor.predict_images(chunk, batch_size=batch)
                    times.append((time.perf_counter() - start) * 1e3 / batch)
            print(json.dumps(times), flush=True)


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ask(worker: subprocess.Popen, n: int) -> list[float]:
    worker.stdin.write(f"{n}\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        raise RuntimeError("a worker stopped; run its command alone to see why")
    return json.loads(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True, help="a Python with ai-edge-litert (the peers' venv)")
    parser.add_argument("--system", action="append", required=True, metavar="NAME=CHECKPOINT",
                        help="one of ours: a checkpoint (PyTorch) or an export (.onnx, ONNX Runtime)")
    parser.add_argument("--accuracy", action="append", default=[], metavar="NAME=REPORT",
                        help="a `deeppose eval` report folder of a system on LSP test: its found-box PCK@0.2 is "
                             "recorded beside the speed")
    parser.add_argument("--name", default="peers_speed")
    parser.add_argument("--images", type=int, default=50, help="LSP test photos to cycle through")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=20)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        ours_worker(args.worker[0], int(args.worker[1]), args.worker[2], int(args.worker[3]), int(args.worker[4]))
        return 0
    from common import write_result

    from deeppose.data.io import read_image
    from deeppose.data.registry import load_dataset
    from deeppose.paths import data_root

    test = load_dataset("lsp", data_root() / "lsp", "test")
    systems = dict(s.split("=", 1) for s in args.system)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for i, sample in enumerate(test.samples[: args.images]):
            np.save(f"{folder}/{i}.npy", read_image(sample.image_path))
        cases = [(1, 1), (2, 1), (2, 32)]  # (threads, batch)
        for threads, batch in cases:
            workers = {name: start([sys.executable, str(HERE), "--peer-python", args.peer_python, "--system", "x=y",
                                    "--worker", path, str(threads), folder, str(args.images), str(batch)])
                       for name, path in systems.items()}
            workers["movenet"] = start([args.peer_python, "-c", MOVENET_WORKER, str(MOVENET), str(threads), folder,
                                        str(args.images)])
            for w in workers.values():
                ask(w, 3)  # warm up
            times: dict[str, list[float]] = {name: [] for name in workers}
            for _ in range(args.rounds):
                for name, w in workers.items():
                    times[name] += ask(w, args.per_round if batch == 1 or name == "movenet" else 2)
            for w in workers.values():
                w.stdin.close()
                w.wait()
            key = f"threads{threads}_batch{batch}"
            ms = {name: statistics.median(t) for name, t in times.items()}
            results[key] = {name: {"ms_per_image": round(v, 3), "images_per_s": round(1e3 / v, 1),
                                   "ratio_to_movenet": round(v / ms["movenet"], 3)} for name, v in ms.items()}
            print(key, json.dumps(results[key]), flush=True)
    command = " ".join(["python", "benchmarks/peers_speed.py", *sys.argv[1:]])
    accuracy = {name: json.loads((Path(folder) / "boxes.json").read_text())["found"]["pck@0.2"]
                for name, folder in (a.split("=", 1) for a in args.accuracy)}
    path = write_result(args.name, {"images": f"LSP test, first {args.images} photos, decoded RGB arrays",
                                    "systems": systems, "movenet": MOVENET.name, "accuracy": accuracy,
                                    "note": "MoveNet runs at batch 1 only (its TFLite graph); its batched row is "
                                            "batch 1 on 2 threads", "results": results}, command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
