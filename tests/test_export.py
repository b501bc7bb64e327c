"""ONNX export (`deeppose export`) and the ONNX Runtime backend: round trip, parity with PyTorch, int8, refusals."""

import json

import numpy as np
import pytest
import torch
from fixtures import TINY, tiny_pipeline

from deeppose.cli import main
from deeppose.errors import DeepPoseError
from deeppose.models.checkpoint import save_checkpoint
from deeppose.models.factory import create_model
from deeppose.models.meta import ModelMeta
from deeppose.serve.export import calibration_set, export_onnx
from deeppose.serve.predictor import Predictor


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    pipe = tiny_pipeline(folder)
    assert main(["export", "--checkpoint", str(pipe), "--out", str(folder / "tiny.onnx")]) == 0
    return pipe, folder / "tiny.onnx"


def _photos(n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (int(rng.integers(50, 90)), int(rng.integers(50, 90)), 3), dtype=np.uint8)
            for _ in range(n)]


def test_the_export_writes_both_graphs_and_what_inference_needs(exported):
    _, onnx = exported
    sidecar = json.loads(onnx.with_suffix(".json").read_text())
    assert (onnx.parent / sidecar["pose"]["file"]).is_file() and (onnx.parent / sidecar["localizer"]["file"]).is_file()
    assert sidecar["precision"] == "fp32" and sidecar["skeleton"] == "lsp14" and len(sidecar["mean"]) == 3
    assert sidecar["pose"]["meta"]["kind"] == "cascade" and sidecar["localizer"]["meta"]["input_size"] == 64
    assert sidecar["model_version"] is None  # unless given: `deeppose export --model-version 2026.12.02`


def test_onnx_runs_what_torch_runs_within_1e4_box_units(exported):
    pipe, onnx = exported
    torch_p, onnx_p = Predictor.from_checkpoint(pipe), Predictor.from_checkpoint(onnx)
    photos = _photos()
    boxes = [np.array([30.0, 30.0, 40.0, 40.0])] * len(photos)  # the same crops: the networks compared
    for a, b in zip(torch_p.predict_images(photos, boxes), onnx_p.predict_images(photos, boxes)):
        assert np.abs(a.stages - b.stages).max() / a.box[2] < 1e-4
        np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
        assert abs(a.person_score - b.person_score) < 1e-4
    batched = onnx_p.predict_images(photos)  # any batch size: the batch axis is dynamic
    single = [onnx_p.predict(p) for p in photos]
    assert all(np.abs(x.joints - y.joints).max() < 1e-3 for x, y in zip(batched, single))


def test_predict_and_eval_take_the_export(exported, tmp_path, synthetic_root):
    _, onnx = exported
    from deeppose.visualize import save_image

    save_image(tmp_path / "in" / "a.png", _photos(1)[0])
    assert main(["predict", str(tmp_path / "in"), "--checkpoint", str(onnx), "--threads", "1", "--out",
                 str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "a.png.json").read_text())
    assert record["box_source"] == "found" and record["stages"] == 2 and len(record["joints"]) == 14
    assert main(["eval", "--checkpoint", str(onnx), "--dataset", "synthetic", "--root", str(synthetic_root),
                 "--split", "test", "--boxes", "annotated", "--out", str(tmp_path / "report")]) == 0
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["n_images"] == 24


def test_int8_calibrates_on_training_images_only(tmp_path, lsp_root):
    with pytest.raises(DeepPoseError, match="never on the test split"):
        calibration_set("lsp:test")
    assert len(calibration_set("lsp:train")) == 1000
    torch.manual_seed(0)
    stage1 = tmp_path / "stage1.pt"
    save_checkpoint(stage1, create_model(TINY, 14, 64), ModelMeta("stage1", "lsp14", 14, 64, model=TINY))
    sidecar = export_onnx(stage1, tmp_path / "s8.onnx", int8=True, n_calibration=8, model_version="2026.12.06")
    assert sidecar["model_version"] == "2026.12.06"
    assert sidecar["precision"] == "int8" and sidecar["calibration"] == "lsp:train" and sidecar["localizer"] is None
    import onnx

    ops = {n.op_type for n in onnx.load(tmp_path / "s8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32, int8 = Predictor.from_checkpoint(stage1), Predictor.from_checkpoint(tmp_path / "s8.onnx")
    photo, box = _photos(1)[0], np.array([30.0, 30.0, 40.0, 40.0])
    assert np.abs(fp32.predict(photo, box).joints - int8.predict(photo, box).joints).max() / 40 < 0.05
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_bad_exports_are_one_line_errors(tmp_path, exported, capsys):
    pipe, onnx = exported
    assert main(["export", "--checkpoint", str(pipe), "--out", str(tmp_path / "x.pt")]) == 2
    assert "x.pt: the export is written as an .onnx file" in capsys.readouterr().err
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    (tmp_path / "bad.json").write_text(onnx.with_suffix(".json").read_text().replace(
        json.loads(onnx.with_suffix(".json").read_text())["pose"]["file"], "bad.onnx"))
    assert main(["predict", str(tmp_path / "bad.onnx"), "--checkpoint", str(tmp_path / "bad.onnx"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "bad.onnx: not a loadable ONNX model" in capsys.readouterr().err
    with pytest.raises(DeepPoseError, match="no export description"):
        Predictor.from_checkpoint(tmp_path / "none.onnx")


@pytest.mark.slow
def test_the_shipped_default_is_the_export_of_the_shipped_checkpoint(lsp_root):
    from deeppose.data.io import read_image
    from deeppose.data.registry import load_dataset
    from deeppose.geometry import square_box, whole_image_box
    from deeppose.paths import default_model

    onnx_path = default_model()
    assert onnx_path.suffix == ".onnx"
    sidecar = json.loads(onnx_path.with_suffix(".json").read_text())
    checkpoint = onnx_path.with_name(sidecar["exported_from"])
    torch_p, onnx_p = Predictor.from_checkpoint(checkpoint), Predictor.from_checkpoint(onnx_path)
    test = load_dataset("lsp", lsp_root, "test")
    photos = [read_image(test[i].image_path) for i in range(0, 1000, 100)]
    boxes = [square_box(whole_image_box(p.shape[1], p.shape[0])) for p in photos]
    for a, b in zip(torch_p.predict_images(photos, boxes), onnx_p.predict_images(photos, boxes)):
        assert np.abs(a.stages - b.stages).max() / a.box[2] < 1e-4 and abs(a.person_score - b.person_score) < 1e-4
    for a, b in zip(torch_p.predict_images(photos), onnx_p.predict_images(photos)):  # everyone found, both ways
        assert len(a.people) == len(b.people) and abs(a.person_score - b.person_score) < 5e-3
        # the boxes differ a little, so do the re-crops' crops: the boxes and most joints agree
        assert np.abs(a.box - b.box).max() / a.box[2] < 0.02
        assert np.median(np.linalg.norm(a.joints - b.joints, axis=1)) / a.box[2] < 5e-3


def test_the_api_takes_grayscale_rgba_and_pil_and_says_what_it_expects(exported):
    from PIL import Image

    pipe, _ = exported
    predictor = Predictor.from_checkpoint(pipe)
    rgb = _photos(1)[0]
    box = np.array([30.0, 30.0, 40.0, 40.0])
    reference = predictor.predict(rgb, box).joints
    gray = rgb[..., 1]
    same_gray = predictor.predict(np.repeat(gray[..., None], 3, axis=2), box).joints
    np.testing.assert_allclose(predictor.predict(gray, box).joints, same_gray)
    np.testing.assert_allclose(predictor.predict(np.dstack([rgb, np.full(gray.shape, 255, np.uint8)]), box).joints,
                               reference)
    np.testing.assert_allclose(predictor.predict(Image.fromarray(rgb), box).joints, reference)
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(rgb.astype(np.float32) / 255, box)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor.predict(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(DeepPoseError, match="4 finite numbers"):
        predictor.predict(rgb, np.array([1.0, 2.0, 3.0]))
