"""Typed checkpoint metadata: round trips, and what older versions wrote still loads (named upgrades)."""

import json
from pathlib import Path

import pytest
import torch
from fixtures import schema1_checkpoint

from deeppose.config import ModelConfig
from deeppose.errors import DeepPoseError
from deeppose.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from deeppose.models.factory import create_model
from deeppose.models.meta import (
    SCHEMA_VERSION,
    BoxRule,
    CascadeGeometry,
    ModelMeta,
    meta_from_dict,
    meta_to_dict,
)

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_a_meta_survives_json():
    stage1 = ModelMeta("stage1", "lsp14", 14, 160, model=ModelConfig(head="dsnt", stride=8),
                       provenance={"config": {"seed": 0}, "best_val_pck": 0.7})
    refiner = ModelMeta("refiner", "lsp14", 14, 48, model=ModelConfig(head="soft_argmax", stride=4),
                        cascade=CascadeGeometry(1.25, 48, 256, ["r_wrist"]))
    cascade = ModelMeta("cascade", "lsp14", 14, 160, cascade=refiner.cascade, stage1=stage1, refiners=[refiner])
    localizer = ModelMeta("localizer", "lsp14", 14, 160, model=ModelConfig(head="dsnt"), box_rule=BoxRule(1.2, 1))
    pipeline = ModelMeta("pipeline", "lsp14", 14, 160, pose=cascade, localizer=localizer)
    back = meta_from_dict(json.loads(json.dumps(meta_to_dict(pipeline))))
    assert back == pipeline and back.stages == 2 and back.schema == SCHEMA_VERSION


def test_a_newer_or_foreign_meta_is_refused(tmp_path):
    model = create_model(ModelConfig("small"), 14, 32)
    newer = {**meta_to_dict(ModelMeta("stage1", "lsp14", 14, 32, model=ModelConfig("small"))), "schema": 99}
    schema1_checkpoint(tmp_path / "newer.pt", model.state_dict(), newer)
    with pytest.raises(DeepPoseError, match="newer.pt: .*schema 99 is newer"):
        load_checkpoint(tmp_path / "newer.pt")
    schema1_checkpoint(tmp_path / "odd.pt", model.state_dict(), {"kind": "teapot", "skeleton": "lsp14",
                                                                  "num_joints": 14, "input_size": 32})
    with pytest.raises(DeepPoseError, match="odd.pt: checkpoint metadata does not describe a model"):
        load_checkpoint(tmp_path / "odd.pt")


def test_a_schema1_fc_checkpoint_with_a_score_loads_into_the_head_that_now_holds_it(tmp_path):
    m = ModelConfig("mobilenet_v2", stride=32, reduce=16, score=True, channels_last=False)
    model = create_model(m, 14, 64).eval()
    old = {k.replace("head.score.", "score."): v for k, v in model.state_dict().items()}  # the old layout
    assert "score.linear.weight" in old
    meta = {"arch": "mobilenet_v2", "num_joints": 14, "skeleton": "lsp14", "input_size": 64, "config": {"seed": 3},
            "best_val_pck": 0.5, "model": {"arch": "mobilenet_v2", "head": "fc", "stride": 32, "reduce": 16,
                                           "score": True}}
    loaded, typed = model_from_checkpoint(schema1_checkpoint(tmp_path / "old.pt", old, meta))
    assert typed.kind == "stage1" and typed.model.score and typed.provenance == {"config": {"seed": 3},
                                                                                  "best_val_pck": 0.5}
    x = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.output(x).confidence, model.output(x).confidence)
    save_checkpoint(tmp_path / "new.pt", loaded, typed)  # written again: schema 2, loads unchanged
    assert torch.load(tmp_path / "new.pt", weights_only=True)["meta"]["schema"] == SCHEMA_VERSION
    assert model_from_checkpoint(tmp_path / "new.pt")[1] == typed


@pytest.mark.parametrize("name", ["deeppose_mobilenet_v2_lsp.pt", "deeppose_mobilenet_v2_person.pt"])
def test_the_shipped_schema1_files_load(name):
    stored = torch.load(MODELS / name, weights_only=True)["meta"]
    assert "schema" not in stored  # written before typed metadata
    model, meta = model_from_checkpoint(MODELS / name)
    if name.endswith("person.pt"):
        assert meta.kind == "pipeline" and meta.stages == 2 and meta.pose.cascade.crop_size == 48
        assert (meta.localizer.box_rule.a, meta.localizer.box_rule.recrops) == (stored["localizer"]["calibration"]["a"],
                                                                                stored["localizer"]["recrops"])
        assert meta.localizer.provenance["config"]["optim"]["lr"] == stored["localizer"]["config"]["lr"]
    else:
        assert meta.kind == "stage1" and meta.model.head == "dsnt" and meta.provenance["epoch"] == stored["epoch"]


def test_the_default_held_lspet_val_out_of_both_of_its_networks():
    """Every figure the model card gives on LSPET val is held out: the pose network trained on LSP train and LSPET
    train only and was selected on LSPET val; the localizer held out the same 500 photos (`lspet_val_size`, the
    split `data.lsp.lspet_val_indices` draws for both)."""
    from deeppose.paths import default_model

    meta = model_from_checkpoint(default_model().with_suffix(".pt"))[1]
    assert meta.kind == "pipeline" and meta.pose.model.padding == "tf_same"
    data = meta.pose.provenance["config"]["data"]
    assert set(data["train"]) <= {"lsp:train", "lspet:train"} and data["val"] == "lspet:val"
    assert meta.localizer.provenance["config"]["lspet_val_size"] == 500
