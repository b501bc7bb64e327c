"""`deeppose predict` on image files: find the images, predict them, write one JSON and one picture per image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeppose.data.io import read_image
from deeppose.errors import DeepPoseError
from deeppose.files import write_json
from deeppose.geometry import corner_box
from deeppose.serve.predictor import Prediction, Predictor
from deeppose.skeleton import Skeleton
from deeppose.visualize import draw_box, draw_pose, save_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def image_paths(inputs: list[str | Path]) -> list[Path]:
    """The image files named, and those in the folders named (sorted); DeepPoseError for a missing input or none."""
    images: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            images.append(item)
        else:
            raise DeepPoseError(item, "no such image or folder")
    if not images:
        raise DeepPoseError(inputs[0] if inputs else None, "no images found")
    return images


def joint_records(result: Prediction, skeleton: Skeleton) -> list[dict[str, Any]]:
    """The joints of a prediction as JSON: name, x, y (pixels) and confidence (None where the model has none)."""
    return [{"name": n, "x": float(x), "y": float(y), "confidence": None if np.isnan(c) else float(c)}
            for n, (x, y), c in zip(skeleton.joints, result.joints, result.confidence)]


def prediction_record(result: Prediction, predictor: Predictor, image: np.ndarray) -> dict[str, Any]:
    """One prediction as JSON (an image's file, a video's line): image size, the box (x, y, w, h from the top-left
    corner) and where it came from, the person score, the skeleton, stages and passes, and the joints."""
    return {"width": image.shape[1], "height": image.shape[0], "box": corner_box(result.box),
            "box_source": result.box_source, "person_score": result.person_score, "person_found": result.person_found,
            "skeleton": predictor.skeleton.name, "stages": predictor.stages, "passes": result.passes,
            "joints": joint_records(result, predictor.skeleton)}


def prediction_picture(image: np.ndarray, result: Prediction, skeleton: Skeleton, min_confidence: float = 0.0
                       ) -> np.ndarray:
    """The image with the skeleton (joints below `min_confidence` left out; NaN confidence is shown) and the box
    (green where a person was found, red where nobody was)."""
    shown = ~(result.confidence < min_confidence)
    return draw_box(draw_pose(image, result.joints, shown, skeleton), result.box, result.person_found is not False)


def describe(path: Path, result: Prediction) -> str:
    """One line for one image: found or not, the person score and the box (x,y,w,h from the top-left corner)."""
    x, y, w, h = corner_box(result.box)
    where = f"box {x:.0f},{y:.0f},{w:.0f},{h:.0f} ({result.box_source})"
    if result.person_found is None:
        return f"{path}: {where}; no person score (this model has no localizer)"
    if result.person_found:
        return f"{path}: person found (person_score {result.person_score:.2f}), {where}"
    return f"{path}: nobody found (person_score {result.person_score:.2f}); joints written with low confidence"


def predict_files(predictor: Predictor, inputs: list[str | Path], out: str | Path, box: np.ndarray | None = None,
                  min_confidence: float = 0.0) -> int:
    """Predict every image of `inputs` (files or folders) into `out`: <stem>.json and <stem>.png each, a line each.
    Every image is decoded first, so a bad one stops the run before anything is written. Returns the count."""
    decoded = [(path, read_image(path)) for path in image_paths(inputs)]
    out = Path(out)
    for path, image in decoded:
        result = predictor.predict(image, box)
        write_json(out / f"{path.stem}.json", {"image": str(path), **prediction_record(result, predictor, image)})
        save_image(out / f"{path.stem}.png", prediction_picture(image, result, predictor.skeleton, min_confidence))
        print(describe(path, result))
    return len(decoded)
