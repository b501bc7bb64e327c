"""End to end, as a user runs it: `deeppose predict` on a folder of 100 LSP test photos (decoding and writing the
JSON and PNG of each included) and on a 100-frame video, per backend; images/s and frames/s from the wall time of
the command (its start-up, loading the model, reported apart from the run: `predict` on one photo).

The video pans and zooms over one LSPET photo (a moving camera on a person), written with OpenCV at 640 x 480.

    python benchmarks/end_to_end.py --system torch=models/deeppose_movenet_person.pt \\
        --system onnx=runs/export/person.onnx --threads 2 --name end_to_end
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from deeppose.data.io import read_image
from deeppose.data.registry import load_dataset
from deeppose.paths import data_root


def panning_clip(image: np.ndarray, path: Path, frames: int = 100, size: tuple[int, int] = (640, 480)) -> Path:
    """A clip of `frames` frames moving a window across `image` (RGB) while zooming in, written as MP4."""
    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, size)
    for t in np.linspace(0, 1, frames):
        scale = 1.0 - 0.3 * t
        cw, ch = w * scale, h * scale
        x0, y0 = (w - cw) * t, (h - ch) * (1 - t) / 2
        a = np.array([[size[0] / cw, 0, -x0 * size[0] / cw], [0, size[1] / ch, -y0 * size[1] / ch]])
        frame = cv2.warpAffine(image, a, size)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", action="append", required=True, metavar="NAME=CHECKPOINT")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--name", default="end_to_end")
    args = parser.parse_args()
    from common import write_result

    root = data_root()
    test = load_dataset("lsp", root / "lsp", "test")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for s in test.samples[: args.photos]:
            shutil.copy(s.image_path, folder / s.image_path.name)
        person = load_dataset("lspet", root / "lspet", "all").samples[0]
        clip = panning_clip(read_image(person.image_path), Path(tmp) / "clip.mp4")
        deeppose = [sys.executable, "-m", "deeppose", "predict"]
        for name, checkpoint in (s.split("=", 1) for s in args.system):
            common = ["--checkpoint", checkpoint, "--threads", str(args.threads)]
            one = timed([*deeppose, str(next(folder.iterdir())), "--out", f"{tmp}/one_{name}", *common])
            photos = timed([*deeppose, str(folder), "--out", f"{tmp}/photos_{name}", *common])
            video = timed([*deeppose, str(clip), "--out", f"{tmp}/video_{name}", *common])
            results[name] = {"start_and_one_photo_s": round(one, 2),
                             "photos_per_s": round(args.photos / max(photos - one, 1e-9), 2),
                             "video_frames_per_s": round(100 / max(video - one, 1e-9), 2),
                             "photos_wall_s": round(photos, 2), "video_wall_s": round(video, 2)}
            print(name, results[name], flush=True)
    command = " ".join(["python", "benchmarks/end_to_end.py", *sys.argv[1:]])
    path = write_result(args.name, {"photos": f"LSP test, first {args.photos} (JPEG files)",
                                    "video": "100 frames, 640 x 480, panning over LSPET photo 1",
                                    "threads": args.threads, "results": results}, command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
