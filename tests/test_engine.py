import csv
import json
from pathlib import Path

import pytest
import torch

from deeppose.config import ModelConfig, load_config
from deeppose.errors import DeepPoseError
from deeppose.models.meta import ModelMeta
from deeppose.train.builders import build_model
from deeppose.train.loop import fit


@pytest.fixture(scope="module")
def data_dir(synthetic_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    (root / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    return root


def _cfg(data_dir, *extra):
    return load_config(None, [f"data.root={data_dir}", "data.train=[synthetic:train]", "data.val_size=16",
                              "data.input_size=32", "data.num_workers=0", "model.arch=small", "optim.batch_size=8",
                              "optim.warmup_steps=2", "epochs=2", *extra])


def test_killed_and_resumed_run_ends_with_the_same_weights(data_dir, tmp_path):
    cfg = _cfg(data_dir, "data.num_workers=1")
    full = fit(cfg, tmp_path / "full", progress=False)
    part = fit(cfg, tmp_path / "part", stop_after_steps=3, progress=False)  # killed mid-epoch 1
    assert part.stopped_early and part.steps == 3
    rest = fit(cfg, tmp_path / "part", resume=True, progress=False)
    assert rest.steps == full.steps == 2 * (32 // 8)
    # the time budget counts the training time of every call of a resumed run
    assert abs(rest.train_seconds - (part.train_seconds + rest.seconds)) < 1.0
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader(open(tmp_path / "part" / "val_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert rest.best_val_pck == pytest.approx(max(float(r["val_pck"]) for r in rows), abs=1e-5)
    assert full.best == tmp_path / "full" / "best.pt" and full.best_val_pck == pytest.approx(rest.best_val_pck)
    assert (tmp_path / "full" / "best.pt").is_file() and (tmp_path / "full" / "tb").is_dir()
    assert json.loads((tmp_path / "full" / "config.json").read_text())["model"]["arch"] == "small"


def test_a_budget_cut_mid_epoch_is_validated_and_the_budget_can_be_extended(data_dir, tmp_path):
    cut = fit(_cfg(data_dir, "max_minutes=1e-6"), tmp_path / "r", progress=False)  # out of time after one step
    assert cut.stopped_early and cut.steps == 1
    rows = list(csv.DictReader(open(tmp_path / "r" / "val_log.csv")))
    assert [r["epoch"] for r in rows] == ["0.25"] and (tmp_path / "r" / "best.pt").is_file()
    # resuming with a longer budget is the same run; the partial epoch is not validated twice
    rest = fit(_cfg(data_dir, "max_minutes=0"), tmp_path / "r", resume=True, progress=False)
    assert not rest.stopped_early and rest.steps == 2 * (32 // 8)
    rows = list(csv.DictReader(open(tmp_path / "r" / "val_log.csv")))
    assert [r["epoch"] for r in rows] == ["0.25", "1", "2"]


def test_a_fractional_last_epoch_is_cut_short_validated_and_resumable(data_dir, tmp_path):
    cfg = _cfg(data_dir, "epochs=1.5")  # 4 steps an epoch: 6 steps, validated after 4 and at the end
    full = fit(cfg, tmp_path / "full", progress=False)
    assert full.steps == 6 and full.epochs_done == 1 and not full.stopped_early
    rows = list(csv.DictReader(open(tmp_path / "full" / "val_log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "1.5"]
    part = fit(cfg, tmp_path / "part", stop_after_steps=5, progress=False)  # killed inside the partial epoch
    assert part.steps == 5
    assert fit(cfg, tmp_path / "part", resume=True, progress=False).steps == 6
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fit(cfg, tmp_path / "part", resume=True, progress=False).steps == 6  # a finished run stays finished


@pytest.mark.parametrize("epochs", ["0", "-1", "nan", "inf"])
def test_epochs_must_be_a_positive_number(data_dir, tmp_path, epochs):
    with pytest.raises(DeepPoseError, match="positive number of epochs"):
        fit(_cfg(data_dir, f"epochs={epochs}"), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_run_folder_rules(data_dir, tmp_path):
    cfg = _cfg(data_dir)
    fit(cfg, tmp_path / "r", stop_after_steps=1, progress=False)
    with pytest.raises(DeepPoseError, match="not empty"):
        fit(cfg, tmp_path / "r", progress=False)
    with pytest.raises(DeepPoseError, match="another config"):
        fit(_cfg(data_dir, "optim.lr=0.5"), tmp_path / "r", resume=True, progress=False)
    with pytest.raises(DeepPoseError, match="nothing to resume"):
        fit(cfg, tmp_path / "empty", resume=True, progress=False)


def test_config_errors_are_clear(data_dir, tmp_path):
    with pytest.raises(DeepPoseError, match="unknown key"):
        _cfg(data_dir, "optim.nope=1")
    with pytest.raises(DeepPoseError, match="unknown loss"):
        fit(_cfg(data_dir, "loss=huber"), tmp_path / "x", progress=False)


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_committed_recipes_load_and_build(recipe):
    cfg = load_config(recipe, ["model.backbone_weights=", "model.init="])  # the architecture, not its weights
    model = build_model(cfg, num_joints=14)
    size = cfg.data.input_size
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, size, size, dtype=torch.uint8))
    assert out.shape == (1, 14, 2)
    assert 0 < cfg.max_minutes <= 90  # every recipe fits the 90-minute CPU budget


def test_fine_tuning_starts_from_a_checkpoint(data_dir, tmp_path):
    from deeppose.models.checkpoint import save_checkpoint, ship_checkpoint
    from deeppose.models.factory import create_model

    fit(_cfg(data_dir, "epochs=1"), tmp_path / "run", progress=False)
    trained = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    tuned = build_model(_cfg(data_dir, f"model.init={tmp_path / 'run' / 'best.pt'}"), num_joints=14).state_dict()
    assert all(torch.equal(tuned[k], trained[k]) for k in trained)
    fresh = build_model(_cfg(data_dir), num_joints=14).state_dict()
    assert not all(torch.equal(fresh[k], trained[k]) for k in trained)
    ship_checkpoint(tmp_path / "run" / "best.pt", tmp_path / "shipped.pt")  # fp16 weights, cast back
    tuned = build_model(_cfg(data_dir, f"model.init={tmp_path / 'shipped.pt'}"), num_joints=14).state_dict()
    assert all(torch.allclose(tuned[k].float(), trained[k].float(), atol=1e-2) for k in trained)
    # fine-tuning trains on from there (and the resolved config records where it started)
    summary = fit(_cfg(data_dir, "epochs=1", f"model.init={tmp_path / 'shipped.pt'}"), tmp_path / "ft", progress=False)
    assert summary.steps == 32 // 8
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["model"]["init"].endswith("shipped.pt")
    other = ModelMeta("stage1", "lsp14", 10, 32, model=ModelConfig("small"))
    save_checkpoint(tmp_path / "other.pt", create_model(ModelConfig("small"), 10, 32), other)
    with pytest.raises(DeepPoseError, match="other.pt: weights do not fit architecture 'small'"):
        build_model(_cfg(data_dir, f"model.init={tmp_path / 'other.pt'}"), num_joints=14)
    with pytest.raises(DeepPoseError, match="none.pt: checkpoint not found"):
        build_model(_cfg(data_dir, f"model.init={tmp_path / 'none.pt'}"), num_joints=14)


def test_fine_tuning_needs_no_backbone_weights_file(tmp_path):
    from dataclasses import replace

    from deeppose.config import ModelConfig
    from deeppose.models.checkpoint import save_checkpoint
    from deeppose.train.builders import build_network

    m = ModelConfig(arch="mobilenet_v2", head="dsnt", stride=8, reduce=16, channels_last=False)
    trained = build_network(m, 14, 64)
    save_checkpoint(tmp_path / "run.pt", trained, ModelMeta("stage1", "lsp14", 14, 64, model=m))
    missing = replace(m, backbone_weights=str(tmp_path / "none.pth"))
    with pytest.raises(DeepPoseError, match="none.pth"):
        build_network(missing, 14, 64)
    tuned = build_network(replace(missing, init=str(tmp_path / "run.pt")), 14, 64)
    assert all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), trained.state_dict().values()))
