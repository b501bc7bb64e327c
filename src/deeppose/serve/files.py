"""`deeppose predict` on image files: find the images, predict them one at a time, write one JSON and one picture per
image, never over an input and never two outputs on one name."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deeppose.data.io import read_image
from deeppose.errors import DeepPoseError
from deeppose.files import write_json
from deeppose.serve.predictor import Prediction, Predictor
from deeppose.serve.records import prediction_picture, prediction_record
from deeppose.visualize import save_image

# what OpenCV decodes (`cv2.imread`); a folder's other files are skipped and listed
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".jp2", ".pbm", ".pgm",
                  ".ppm", ".pnm", ".pxm", ".sr", ".ras", ".exr", ".hdr", ".pic")


@dataclass
class Job:
    """The images `predict` reads and what it writes for each: out/<path relative to the inputs>.json and
    .pose.png (the input's own name kept whole, so a.jpg and a.png do not collide)."""

    images: list[Path]
    keys: list[Path]
    skipped: list[Path]

    def outputs(self, out: Path, key: Path) -> tuple[Path, Path]:
        return out / key.with_name(key.name + ".json"), out / key.with_name(key.name + ".pose.png")


def plan_job(inputs: list[str | Path], out: str | Path) -> Job:
    """The images named and those in the folders named (recursively, sorted), keyed by their path relative to
    the inputs' common folder; DeepPoseError, before any work, for a missing input, no images, an --out that
    is a file or inside an input folder (the outputs would be read back as inputs), or an output that would
    replace an input."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DeepPoseError(out, "--out is a file; give a folder")
    images, roots, skipped = [], [], []
    for item in map(Path, inputs):
        if item.is_dir():
            if out.resolve().is_relative_to(item.resolve()):
                raise DeepPoseError(out, f"--out is inside the input folder {item}: its outputs would be read back "
                                         f"as inputs; write them elsewhere")
            files = sorted(p for p in item.rglob("*") if p.is_file())
            images += [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            skipped += [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
            roots += [item] * sum(p.suffix.lower() in IMAGE_SUFFIXES for p in files)
        elif item.is_file():
            images.append(item)
            roots.append(item.parent)
        else:
            raise DeepPoseError(item, "no such image or folder")
    if not images:
        raise DeepPoseError(inputs[0] if inputs else None, "no images found")
    # absolute, links not followed: an image that links elsewhere keeps its place among the inputs
    base = Path(os.path.commonpath([os.path.abspath(r) for r in roots]))
    keys = [Path(os.path.abspath(p)).relative_to(base) for p in images]
    job = Job(images, keys, skipped)
    inputs_resolved = {p.resolve() for p in images}
    for key in keys:
        for path in job.outputs(out, key):
            if path.resolve() in inputs_resolved:
                raise DeepPoseError(path, "an output would replace this input; choose another --out")
    return job


def describe(path: Path, result: Prediction) -> str:
    """One line for one image: how many people were found, and the best one's score and box (x,y,w,h from the
    top-left corner)."""
    x, y, w, h = result.box
    where = f"box {x:.0f},{y:.0f},{w:.0f},{h:.0f} ({result.box_source})"
    if result.person_found is None:
        return f"{path}: {where}; no person score (this model has no person detector)"
    if result.person_found:
        n = len(result.people)
        return (f"{path}: {n} {'person' if n == 1 else 'people'} found; best person_score "
                f"{result.person_score:.2f}, {where}")
    return f"{path}: nobody found (best person_score {result.person_score:.2f})"


def read_boxes(path: str | Path) -> dict[str, list[float]]:
    """A boxes file: a JSON object from image (its path as given, its path relative to the inputs, or its file
    name) to its person box [x, y, w, h]; DeepPoseError naming the file when it is not one."""
    path = Path(path)
    try:
        boxes = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(boxes, dict):
            raise ValueError("not an object")
        for name, box in boxes.items():
            if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
                raise ValueError(f"{name!r}: expected [x, y, w, h], got {box!r}")
    except (OSError, ValueError) as exc:
        raise DeepPoseError(path, f"not a boxes file ({exc})") from None
    return boxes


def predict_files(predictor: Predictor, inputs: list[str | Path], out: str | Path, box: np.ndarray | None = None,
                  min_confidence: float = 0.0, skip_bad: bool = False, boxes: dict[str, list[float]] | None = None,
                  job: Job | None = None) -> tuple[int, list[Path]]:
    """Predict every image of `inputs` (files or folders) into `out` (see `Job`), one image in memory at a time,
    each file written whole or not at all, a line per image. `box` applies to every image; `boxes` (`read_boxes`)
    gives some images their own, the others are found. A bad image stops the run (DeepPoseError naming it;
    what was written before stays) unless `skip_bad`. Nothing is written before the plan is checked (`job`: one
    `plan_job(inputs, out)` already made, e.g. before loading the model).

    Returns:
        (images predicted, files skipped: a folder's non-images and, with `skip_bad`, the undecodable ones).
    """
    job = job or plan_job(inputs, out)
    out, skipped, done = Path(out), list(job.skipped), 0
    for path, key in zip(job.images, job.keys):
        try:
            image = read_image(path)
        except DeepPoseError:
            if not skip_bad:
                raise
            skipped.append(path)
            continue
        own = None if boxes is None else next((boxes[k] for k in (str(path), key.as_posix(), path.name) if k in boxes),
                                              None)
        result = predictor.predict(image, own if own is not None else box)
        json_path, picture_path = job.outputs(out, key)
        write_json(json_path, {"image": str(path), **prediction_record(result, predictor, image)})
        save_image(picture_path, prediction_picture(image, result, predictor.skeleton, min_confidence))
        print(describe(path, result))
        done += 1
    return done, skipped
