"""Where datasets and weights live: one setting, DEEPPOSE_DATA (default: ../shared/data)."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

DATA_ENV = "DEEPPOSE_DATA"


def data_root() -> Path:
    """The datasets folder: $DEEPPOSE_DATA, else ../shared/data from the working directory, else from the checkout.

    The last fallback lets a source checkout with ../shared beside it work from any working directory.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    here = Path("..") / "shared" / "data"
    if here.is_dir():
        return here
    checkout = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
    return checkout if checkout.is_dir() else here


def weights_root() -> Path:
    """Pretrained weights: the `weights` folder beside the datasets folder (../shared/weights by default)."""
    return data_root().parent / "weights"


DEFAULT_MODEL = "deeppose_movenet_people.onnx"  # the ONNX export (`deeppose export`) of the .pt beside it


def default_model() -> Path:
    """The shipped default model (person localizer + pose cascade): package data of `deeppose_models`, installed
    with deeppose (in a checkout: its `models/` folder)."""
    return Path(str(resources.files("deeppose_models").joinpath(DEFAULT_MODEL)))


def default_model_version() -> str:
    """What `deeppose --version` says of the default model: its name and version (its description's
    "model_version"), or that it is missing."""
    description = default_model().with_suffix(".json")
    try:
        version = json.loads(description.read_text(encoding="utf-8")).get("model_version") or "unversioned"
    except (OSError, ValueError):
        return f"default model {DEFAULT_MODEL}: not installed ({description} unreadable)"
    return f"default model {Path(DEFAULT_MODEL).stem} {version}"
