import os

import pytest
import torch
from fixtures import schema1_checkpoint

from deeppose.config import ModelConfig
from deeppose.errors import DeepPoseError
from deeppose.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from deeppose.models.factory import create_model
from deeppose.models.meta import ModelMeta


def _meta(arch="small", size=32):
    return ModelMeta("stage1", "lsp14", 14, size, model=ModelConfig(arch))


def test_round_trip(tmp_path):
    model = create_model(ModelConfig("small"), 14, 32)
    save_checkpoint(tmp_path / "c.pt", model, _meta())
    loaded, meta = model_from_checkpoint(tmp_path / "c.pt")
    x = torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(loaded(x), model.eval()(x))
    assert meta == _meta() and not list(tmp_path.glob(".*tmp*"))


def test_other_architecture_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", create_model(ModelConfig("small"), 14, 32), _meta(arch="mobilenet_v2"))
    with pytest.raises(DeepPoseError, match="c.pt: weights do not fit architecture 'mobilenet_v2'"):
        model_from_checkpoint(tmp_path / "c.pt")


def test_tampered_and_malicious_files_are_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", create_model(ModelConfig("small"), 14, 32), _meta())
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    key = next(k for k in ckpt["model"] if k.endswith("weight"))
    ckpt["model"][key] = ckpt["model"][key] * 1.01
    torch.save(ckpt, tmp_path / "tampered.pt")
    with pytest.raises(DeepPoseError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "tampered.pt")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    torch.save({"model": {}, "meta": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(DeepPoseError, match="refused to unpickle"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DeepPoseError, match="not a zip archive"):
        load_checkpoint(tmp_path / "junk.pt")
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DeepPoseError, match="cut.pt"):
        load_checkpoint(tmp_path / "cut.pt")


def test_shipped_fp16_copy_loads_and_predicts_alike(tmp_path):
    from deeppose.models.checkpoint import ship_checkpoint

    model = create_model(ModelConfig("small"), 14, 32)
    save_checkpoint(tmp_path / "c.pt", model, _meta(), optimizer={"state": {}})
    ship_checkpoint(tmp_path / "c.pt", tmp_path / "s.pt")
    ckpt = load_checkpoint(tmp_path / "s.pt")
    assert "optimizer" not in ckpt and ckpt["meta"].provenance["weights_dtype"] == "float16"
    loaded, _ = model_from_checkpoint(tmp_path / "s.pt")
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(loaded(x), model.eval()(x), atol=2e-3, rtol=0)


def test_joints_box_frames_the_pose():
    import numpy as np

    from deeppose.geometry import joints_box

    y = np.array([[10.0, 20.0], [30.0, 100.0], [500.0, 500.0]])
    box = joints_box(y, np.array([True, True, False]), scale=1.5)
    np.testing.assert_allclose(box, [20, 60, 120, 120])


def test_backbone_classifier_is_neither_kept_nor_required(tmp_path):
    from deeppose.models.checkpoint import ship_checkpoint

    model = create_model(ModelConfig("mobilenet_v2", head="soft_argmax", stride=8, reduce=16), 14, 64)
    assert not [k for k in model.state_dict() if k.startswith("backbone.classifier.")]
    meta = {"arch": "mobilenet_v2", "num_joints": 14, "skeleton": "lsp14", "input_size": 64,
            "model": {"arch": "mobilenet_v2", "head": "soft_argmax", "stride": 8, "reduce": 16}}
    # A checkpoint written before the classifier was dropped still loads, and its shipped copy leaves it out.
    old = {**model.state_dict(), "backbone.classifier.1.weight": torch.zeros(1000, 1280),
           "backbone.classifier.1.bias": torch.zeros(1000)}
    schema1_checkpoint(tmp_path / "old.pt", old, meta)
    loaded, _ = model_from_checkpoint(tmp_path / "old.pt")
    ship_checkpoint(tmp_path / "old.pt", tmp_path / "s.pt")
    assert not [k for k in load_checkpoint(tmp_path / "s.pt")["model"] if "classifier" in k]
    x = torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(loaded(x), model.eval()(x))
