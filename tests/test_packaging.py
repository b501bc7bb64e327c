"""Installing like a library: the default model found as package data, the version naming it, and an environment
that holds exactly the locked versions."""

import json
import re
from importlib import metadata, resources
from pathlib import Path

import pytest

from deeppose.cli import main
from deeppose.paths import DEFAULT_MODEL, default_model, default_model_version

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_model_is_package_data_with_its_export_and_card():
    model = default_model()
    assert model == Path(str(resources.files("deeppose_models") / DEFAULT_MODEL)) and model.is_file()
    description = json.loads(model.with_suffix(".json").read_text())
    assert (model.parent / description["localizer"]["file"]).is_file()
    version = description["model_version"]
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", version)
    assert version in model.with_suffix(".md").read_text()  # the model card names the version it describes
    assert default_model_version() == f"default model {model.stem} {version}"


def test_version_names_the_package_and_the_default_model(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    out = capsys.readouterr().out
    assert out.startswith(f"deeppose {metadata.version('deeppose')}; default model {Path(DEFAULT_MODEL).stem} 20")


def _pins(lock: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", lock.read_text(), flags=re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_environment_holds_exactly_the_locked_versions():
    """`make test` installs requirements/dev.lock; every package it pins is here at that version, and the runtime
    lock agrees with it on every package they share."""
    dev, runtime = _pins(ROOT / "requirements" / "dev.lock"), _pins(ROOT / "requirements" / "runtime.lock")
    assert {"torch", "numpy", "onnxruntime", "fastapi", "ai-edge-litert", "pytest"} <= set(dev)
    assert set(runtime) <= set(dev) and all(dev[name] == version for name, version in runtime.items())
    assert "ai-edge-litert" not in runtime and "pytest" not in runtime  # training and test tools stay out
    wrong = {name: (version, metadata.version(name)) for name, version in dev.items()
             if metadata.version(name) != version}
    assert not wrong, f"installed versions differ from requirements/dev.lock (run make dev): {wrong}"
