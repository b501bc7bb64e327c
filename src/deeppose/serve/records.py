"""What a prediction becomes for users: its JSON record, following the versioned schema in
serve/schemas/prediction.schema.json (an image's file, a video's line, the server's answer), and its picture.

Schema 2 lists everyone found (`people`, best first); the single-person fields of schema 1 at the top level (box,
box_source, person_score, passes, joints) still report the best candidate, deprecated, for one release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeppose.serve.predictor import Person, Prediction, Predictor
from deeppose.skeleton import Skeleton
from deeppose.visualize import draw_box, draw_pose, person_colour

# the version of serve/schemas/prediction.schema.json that every prediction record follows
SCHEMA_VERSION = 2
SCHEMA = Path(__file__).parent / "schemas" / "prediction.schema.json"


def joint_records(person: Person, skeleton: Skeleton) -> list[dict[str, Any]]:
    """A person's joints as JSON: name, x, y (pixels) and confidence (None where the model has none)."""
    return [{"name": n, "x": float(x), "y": float(y), "confidence": None if np.isnan(c) else float(c)}
            for n, (x, y), c in zip(skeleton.joints, person.joints, person.confidence)]


def person_record(person: Person, skeleton: Skeleton) -> dict[str, Any]:
    """One person as JSON: the box (x, y, w, h from the top-left corner) and where it came from, the person score,
    the pose passes, the joints, and the track id on video."""
    out = {"box": [float(v) for v in person.box], "box_source": person.box_source,
           "person_score": person.person_score, "passes": person.passes, "joints": joint_records(person, skeleton)}
    if person.track_id is not None:
        out["track_id"] = person.track_id
    return out


def prediction_record(result: Prediction, predictor: Predictor, image: np.ndarray) -> dict[str, Any]:
    """One prediction as JSON (an image's file, a video's line), following `SCHEMA`: its version, image size,
    whether anyone was found, the skeleton and stages, everyone found (`person_record`, best first), and the
    deprecated single-person fields of schema 1 (the best candidate's)."""
    best = result.best
    return {"schema_version": SCHEMA_VERSION, "width": image.shape[1], "height": image.shape[0],
            "person_found": result.person_found, "skeleton": predictor.skeleton.name, "stages": predictor.stages,
            "people": [person_record(p, predictor.skeleton) for p in result.people],
            "box": [float(v) for v in best.box], "box_source": best.box_source, "person_score": best.person_score,
            "passes": best.passes, "joints": joint_records(best, predictor.skeleton)}


def prediction_picture(image: np.ndarray, result: Prediction, skeleton: Skeleton, min_confidence: float = 0.0
                       ) -> np.ndarray:
    """The image with everyone found: each person's skeleton (joints below `min_confidence` left out; NaN
    confidence is shown) and box, one colour per person when there are several (their limbs' colours when there
    is one, its box green), labelled with the person's rank or track id and score; with nobody found, the best
    candidate's box in red and no skeleton."""
    if not result.people:
        return draw_box(image, result.best.box, False)
    out = image
    several = len(result.people) > 1
    for rank, person in enumerate(result.people):
        key = rank if person.track_id is None else person.track_id
        colour = person_colour(key) if several or person.track_id is not None else None
        shown = ~(person.confidence < min_confidence)
        label = f"#{key}" + ("" if person.person_score is None else f" {person.person_score:.2f}")
        out = draw_pose(out, person.joints, shown, skeleton, colour=colour)
        out = draw_box(out, person.box, True, colour, label if several or person.track_id is not None else "")
    return out
