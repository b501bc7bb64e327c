"""What a prediction becomes for users: its JSON record, following the versioned schema in
serve/schemas/prediction.schema.json (an image's file, a video's line, the server's answer), and its picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeppose.serve.predictor import Prediction, Predictor
from deeppose.skeleton import Skeleton
from deeppose.visualize import draw_box, draw_pose

# the version of serve/schemas/prediction.schema.json that every prediction record follows
SCHEMA_VERSION = 1
SCHEMA = Path(__file__).parent / "schemas" / "prediction.schema.json"


def joint_records(result: Prediction, skeleton: Skeleton) -> list[dict[str, Any]]:
    """The joints of a prediction as JSON: name, x, y (pixels) and confidence (None where the model has none)."""
    return [{"name": n, "x": float(x), "y": float(y), "confidence": None if np.isnan(c) else float(c)}
            for n, (x, y), c in zip(skeleton.joints, result.joints, result.confidence)]


def prediction_record(result: Prediction, predictor: Predictor, image: np.ndarray) -> dict[str, Any]:
    """One prediction as JSON (an image's file, a video's line), following `SCHEMA`: its version, image size, the
    box (x, y, w, h from the top-left corner) and where it came from, the person score, the skeleton, stages and
    passes, and the joints."""
    return {"schema_version": SCHEMA_VERSION, "width": image.shape[1], "height": image.shape[0],
            "box": [float(v) for v in result.box], "box_source": result.box_source, "person_score": result.person_score,
            "person_found": result.person_found, "skeleton": predictor.skeleton.name, "stages": predictor.stages,
            "passes": result.passes, "joints": joint_records(result, predictor.skeleton)}


def prediction_picture(image: np.ndarray, result: Prediction, skeleton: Skeleton, min_confidence: float = 0.0
                       ) -> np.ndarray:
    """The image with the skeleton (joints below `min_confidence` left out; NaN confidence is shown) and the box
    (green where a person was found, red where nobody was)."""
    shown = ~(result.confidence < min_confidence)
    return draw_box(draw_pose(image, result.joints, shown, skeleton), result.box, result.person_found is not False)
