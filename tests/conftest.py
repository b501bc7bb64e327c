"""Shared fixtures: seeding, the real datasets (DEEPPOSE_DATA) and a tiny synthetic set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deeppose.data.synthetic import write_synthetic
from deeppose.paths import data_root


@pytest.fixture(autouse=True)
def _seed() -> None:
    np.random.seed(0)
    torch.manual_seed(0)


def _require(path: Path, what: str) -> Path:
    """Skip with a reason when a real dataset is missing; under CI=true a missing dataset is a failure."""
    if not path.exists():
        message = f"{what} not found at {path} (set DEEPPOSE_DATA to the folder holding lsp/, lspet/, mpii/)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(data_root(), "datasets folder")


@pytest.fixture(scope="session")
def lsp_root(shared_data: Path) -> Path:
    return _require(shared_data / "lsp", "LSP")


@pytest.fixture(scope="session")
def lspet_root(shared_data: Path) -> Path:
    return _require(shared_data / "lspet", "LSPET")


@pytest.fixture(scope="session")
def mpii_root(shared_data: Path) -> Path:
    return _require(shared_data / "mpii", "MPII")


@pytest.fixture(scope="session")
def movenet(shared_data: Path) -> Path:
    """MoveNet Lightning's TFLite file in the peers folder beside the datasets (../shared/peers)."""
    return _require(shared_data.parent / "peers" / "movenet_single_pose_lightning_ptq.tflite", "MoveNet TFLite")


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (no ../shared needed): 48 train, 16 val, 24 test people at 96 px."""
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic(root, {"train": 48, "val": 16, "test": 24}, seed=3, size=96, progress=False)
    return root


@pytest.fixture(scope="session")
def multi_root(shared_data: Path) -> Path:
    return _require(shared_data / "multi", "data/multi")


@pytest.fixture(scope="session")
def negatives_root(shared_data: Path) -> Path:
    return _require(shared_data / "negatives", "data/negatives")
