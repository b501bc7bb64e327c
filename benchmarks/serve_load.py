"""`deeppose serve` under load on loopback: the real command started with the shipped model, then clients in
threads POST photos to /v1/pose at several concurrencies, a bounded number of requests and seconds each; latency
percentiles, throughput, the server's resident memory (after start-up, and its peak: VmHWM) and every answer
checked against the one the idle server gave for the same photo. A last level sends more requests at once than
the queue holds: each must be answered, rightly or with 503 and Retry-After.

Photos: LSP test JPEGs (crops around one person) and MPII's 1280 x 720 scenes (whole photos), in turn.

    python benchmarks/serve_load.py --threads 2 --name serve_load
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from deeppose.data.registry import load_dataset
from deeppose.paths import DEFAULT_MODEL, data_root


def start_server(checkpoint: str, threads: int, workers: int, queue: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "deeppose", "serve", "--checkpoint", checkpoint, "--port",
                                str(port), "--threads", str(threads), "--workers", str(workers), "--queue",
                                str(queue)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"deeppose serve exited with {process.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.25)
    process.kill()
    raise SystemExit("the server did not start within 120 s")


def memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(fields[name].split()[0]) / 1024, 1) for key, name in (("rss", "VmRSS"),
                                                                                  ("peak", "VmHWM"))}


def joints(answer: dict[str, Any]) -> np.ndarray:
    return np.array([[j["x"], j["y"]] for j in answer["joints"]])


def run_level(url: str, photos: list[tuple[str, bytes]], references: list[np.ndarray], concurrency: int,
              requests: int, seconds: float) -> dict[str, Any]:
    """`concurrency` clients sending up to `requests` requests in all (photos in turn) for at most `seconds`."""
    lock, sent = threading.Lock(), [0]
    records: list[tuple[int, float, str]] = []  # (status, seconds, verdict)
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= requests:
                        return
                    i = sent[0]
                    sent[0] += 1
                name, data = photos[i % len(photos)]
                start = time.perf_counter()
                try:
                    answer = http.post(url + "/v1/pose", files={"image": (name, data, "image/jpeg")})
                except httpx.TransportError as exc:
                    records.append((0, time.perf_counter() - start, f"lost: {exc}"))
                    continue
                took = time.perf_counter() - start
                if answer.status_code == 200:
                    right = np.allclose(joints(answer.json()), references[i % len(photos)], atol=1e-6)
                    verdict = "right" if right else "wrong"
                elif answer.status_code == 503:
                    verdict = "busy" if answer.headers.get("retry-after", "").isdigit() else "busy, no Retry-After"
                else:
                    verdict = f"status {answer.status_code}"
                records.append((answer.status_code, took, verdict))

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = np.array([s for status, s, _ in records if status == 200]) * 1000
    busy = np.array([s for status, s, _ in records if status == 503]) * 1000
    verdicts = [v for _, _, v in records]
    return {"concurrency": concurrency, "requests": len(records), "wall_s": round(wall, 2),
            "answered_right": verdicts.count("right"), "busy_503": verdicts.count("busy"),
            "other": sorted({v for v in verdicts if v not in ("right", "busy")}),
            "other_count": sum(v not in ("right", "busy") for v in verdicts),
            "p50_ms": round(float(np.percentile(ok, 50)), 1) if ok.size else None,
            "p95_ms": round(float(np.percentile(ok, 95)), 1) if ok.size else None,
            "throughput_per_s": round(len(ok) / wall, 2),
            "busy_p50_ms": round(float(np.percentile(busy, 50)), 1) if busy.size else None}


def photo_sets(count: int) -> dict[str, list[tuple[str, bytes]]]:
    root = data_root()
    lsp = load_dataset("lsp", root / "lsp", "test").samples[:count]
    mpii = sorted({s.image_path for s in load_dataset("mpii", root / "mpii", "all").samples})
    return {"lsp_test": [(s.image_path.name, s.image_path.read_bytes()) for s in lsp],
            "mpii_scenes": [(p.name, p.read_bytes()) for p in mpii]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=f"models/{DEFAULT_MODEL}", help="the model served")
    parser.add_argument("--threads", type=int, default=2, help="the server's --threads")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--queue", type=int, default=8)
    parser.add_argument("--concurrency", default="1,4,8", help="client counts, comma-separated (within the queue)")
    parser.add_argument("--requests", type=int, default=150, help="requests per level")
    parser.add_argument("--seconds", type=float, default=90, help="at most this long per level")
    parser.add_argument("--photos", type=int, default=50, help="LSP test photos")
    parser.add_argument("--name", default="serve_load")
    args = parser.parse_args()
    from common import write_result

    process, url = start_server(args.checkpoint, args.threads, args.workers, args.queue)
    try:
        started = memory_mib(process.pid)
        sets, results = photo_sets(args.photos), {}
        levels = [int(c) for c in args.concurrency.split(",")]
        overload = 3 * (args.workers + args.queue)
        for name, photos in sets.items():
            with httpx.Client(timeout=120) as http:  # the idle server's answers: what every later one must equal
                references = [joints(http.post(url + "/v1/pose", files={"image": p}).json()) for p in photos]
            rows = []
            for c in [*levels, overload]:
                rows.append(run_level(url, photos, references, c, args.requests, args.seconds))
                print(name, rows[-1], flush=True)
            results[name] = rows
        memory = memory_mib(process.pid)
    finally:
        process.terminate()
        process.wait(30)
    command = " ".join(["python", "benchmarks/serve_load.py", *sys.argv[1:]])
    path = write_result(args.name, {
        "server": {"checkpoint": args.checkpoint, "threads": args.threads, "workers": args.workers,
                   "queue": args.queue},
        "photos": {"lsp_test": f"LSP test, first {args.photos} JPEGs", "mpii_scenes": "the 5 MPII scenes, 1280 x 720"},
        "overload_concurrency": overload, "memory_mib": {"after_start": started["rss"], "peak": memory["peak"],
                                                         "end": memory["rss"]},
        "results": results}, command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
