"""Where datasets and weights live: one setting, DEEPPOSE_DATA (default: ../shared/data)."""

from __future__ import annotations

import os
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


DEFAULT_MODEL = "deeppose_mobilenet_v2_person.onnx"  # the ONNX export (`deeppose export`) of the .pt beside it


def default_model() -> Path:
    """The shipped default model (person localizer + pose cascade): models/ of the checkout."""
    return Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL
