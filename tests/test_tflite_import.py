"""MoveNet's backbone imported exactly: TF SAME padding, per-channel dequantization, BatchNorm folding, the
`deeppose import-tflite` command, and parity with the TFLite interpreter's own intermediate tensors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from deeppose.cli import main
from deeppose.data.io import read_image
from deeppose.models.factory import load_backbone_weights
from deeppose.models.mobilenet_v2 import MobileNetV2, SameConv2d, tf_same_pads
from deeppose.models.normalize import InputNormalize
from deeppose.models.tflite_import import (
    backbone_convolutions,
    dequantize,
    fold_bias_into_bn,
    fold_input_scaling,
    import_tflite_backbone,
)
from deeppose.paths import data_root

MOVENET = "movenet_single_pose_lightning_ptq.tflite"


@pytest.mark.parametrize("size, kernel, stride, pads", [(160, 3, 2, (0, 1)), (161, 3, 2, (1, 1)), (5, 3, 1, (1, 1)),
                                                         (8, 1, 2, (0, 0)), (7, 1, 1, (0, 0))])
def test_tf_same_pads_put_the_odd_pixel_after(size, kernel, stride, pads):
    assert tf_same_pads(size, kernel, stride) == pads


def test_same_conv_of_ones_counts_the_pixels_it_covers():
    conv = SameConv2d(1, 1, 3, 2)
    nn.init.ones_(conv.weight)
    out = conv(torch.ones(1, 1, 4, 4))[0, 0]
    # TF SAME pads a 4x4 input only on the right and bottom: windows cover rows/cols {0,1,2} and {2,3,pad}
    assert out.tolist() == [[9.0, 6.0], [6.0, 4.0]]
    symmetric = nn.Conv2d(1, 1, 3, 2, 1, bias=False)
    nn.init.ones_(symmetric.weight)
    assert symmetric(torch.ones(1, 1, 4, 4))[0, 0].tolist() == [[4.0, 6.0], [6.0, 9.0]]


@pytest.mark.parametrize("size", [160, 161, 192])
def test_tf_same_backbone_keeps_the_keys_and_gives_ceil_sized_maps(size):
    same, sym = MobileNetV2(padding="tf_same"), MobileNetV2()
    assert list(same.state_dict()) == list(sym.state_dict())
    same.load_state_dict(sym.state_dict())
    with torch.no_grad():
        maps = same.eval().forward_pyramid(torch.zeros(1, 3, size, size), (8, 16, 32))
    assert [m.shape[-1] for m in maps] == [-(-size // s) for s in (8, 16, 32)]
    with pytest.raises(ValueError, match="padding"):
        MobileNetV2(padding="reflect")


def test_dequantize_is_per_channel_along_the_quantized_dimension():
    q = np.array([[[[1, -2]]], [[[3, 4]]]], np.int8)  # (2, 1, 1, 2): channel axis 0
    out = dequantize(q, {"scales": np.array([0.5, 2.0]), "zero_points": np.array([1, 0]), "quantized_dimension": 0})
    np.testing.assert_array_equal(out.reshape(2, 2), [[0.0, -1.5], [6.0, 8.0]])
    depthwise = dequantize(q.reshape(1, 1, 2, 2), {"scales": np.array([1.0, 0.1]), "zero_points": np.zeros(2),
                                                   "quantized_dimension": 3})
    np.testing.assert_allclose(depthwise.reshape(2, 2), [[1.0, -0.2], [3.0, 0.4]], rtol=1e-6)


def test_batchnorm_adds_the_folded_bias_exactly_in_eval_and_nearly_in_training():
    torch.manual_seed(0)
    y = torch.randn(64, 5, 6, 6) * torch.tensor([0.5, 2, 1, 3, 0.1]).view(1, 5, 1, 1) + 1.5
    bias = torch.randn(5)
    bn = nn.BatchNorm2d(5)
    fold_bias_into_bn(bn, bias, y.mean(dim=(0, 2, 3)), y.var(dim=(0, 2, 3), unbiased=False))
    torch.testing.assert_close(bn.eval()(y), y + bias.view(1, 5, 1, 1), atol=1e-5, rtol=1e-5)
    # a training batch with the measured statistics normalizes to the same function
    torch.testing.assert_close(bn.train()(y), y + bias.view(1, 5, 1, 1), atol=1e-3, rtol=1e-3)
    plain = nn.BatchNorm2d(5)
    fold_bias_into_bn(plain, bias)  # no statistics: eval mode is exact still
    torch.testing.assert_close(plain.eval()(y), y + bias.view(1, 5, 1, 1), atol=1e-4, rtol=1e-4)


def test_input_scaling_folded_into_the_first_convolution_matches_tf_input_inside():
    torch.manual_seed(1)
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    x = torch.randint(0, 256, (1, 3, 9, 9), dtype=torch.uint8)
    tf_input = x.float() / 127.5 - 1
    w2, b2 = fold_input_scaling(w, b)
    ours = nn.functional.conv2d(InputNormalize()(x), w2, b2)
    torch.testing.assert_close(ours, nn.functional.conv2d(tf_input, w, b), atol=1e-4, rtol=1e-4)


def interpreter_tensors(movenet, lsp_root, image: str):
    """A 192 px LSP photo, and a function giving the TFLite interpreter's dequantized float tensor (B, H, W, C) whose
    name contains a text, after running MoveNet on the photo with every intermediate tensor kept."""
    import cv2

    from deeppose.models.tflite_import import _interpreter

    photo = cv2.resize(read_image(lsp_root / "images" / image), (192, 192), interpolation=cv2.INTER_AREA)
    interpreter = _interpreter(movenet, preserve_all_tensors=True)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], photo[None])
    interpreter.invoke()
    tensors = {t["name"]: t for t in interpreter.get_tensor_details()}

    def tensor(text: str) -> np.ndarray:
        t = next(t for n, t in tensors.items() if text in n and len(t["shape"]) == 4)
        q = t["quantization_parameters"]
        return (interpreter.get_tensor(t["index"]).astype(np.float32) - q["zero_points"][0]) * q["scales"][0]

    return photo, tensor


@pytest.mark.slow
def test_imported_backbone_matches_the_tflite_interpreter_only_with_tf_same(movenet, lsp_root):
    state, provenance = import_tflite_backbone(movenet)
    assert provenance["layers"] == 52 and len(provenance["sha256"]) == 64
    photo, tflite = interpreter_tensors(movenet, lsp_root, "im1003.jpg")

    correlations = {}
    for padding in ("tf_same", "symmetric"):
        net = MobileNetV2(padding=padding)
        net.classifier = nn.Identity()
        net.load_state_dict(state, strict=False)
        x = InputNormalize()(torch.from_numpy(photo).permute(2, 0, 1)[None])
        with torch.no_grad():
            maps = net.eval().forward_pyramid(x, (4, 8, 16, 32))
        for stride, layer in zip((4, 8, 16, 32), ("block_2_add", "block_5_add", "block_12_add", "out_relu")):
            ours = maps[(4, 8, 16, 32).index(stride)][0].permute(1, 2, 0).numpy()
            correlations[padding, layer] = np.corrcoef(ours.ravel(), tflite(f"model/{layer}")[0].ravel())[0, 1]
    for layer in ("block_2_add", "block_5_add", "block_12_add", "out_relu"):
        assert correlations["tf_same", layer] >= 0.99, correlations
    assert correlations["symmetric", "out_relu"] < 0.8, correlations  # the test tells the paddings apart


def test_import_command_writes_weights_our_loader_takes_and_their_provenance(movenet, tmp_path, lsp_root):
    out = tmp_path / "w" / "movenet.pth"
    assert main(["import-tflite", str(movenet), "--out", str(out), "--calibration-images", "8",
                 "--root", str(data_root())]) == 0
    provenance = json.loads(out.with_name("movenet.pth.json").read_text())
    assert provenance["source"] == MOVENET and "8 calibration photos" in provenance["batchnorm"]
    backbone = MobileNetV2(padding="tf_same")
    load_backbone_weights(backbone, out)
    bns = [bn for _, bn in backbone_convolutions(backbone)]
    assert len(bns) == 52 and all(float(bn.running_var.mean()) != 1.0 for bn in bns)
    assert torch.load(out, weights_only=True).keys() == {k for k in backbone.state_dict() if "classifier" not in k}


def test_import_command_refuses_bad_files_in_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    assert main(["import-tflite", str(broken), "--out", str(tmp_path / "o.pth"), "--calibration-images", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.tflite" in err and len(err.splitlines()) == 1
    assert main(["import-tflite", str(tmp_path / "none.tflite"), "--out", str(tmp_path / "o.pth")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["import-tflite", str(broken), "--out", str(broken), "--calibration-images", "0"]) == 2
    assert broken.read_bytes() == b"not a flatbuffer" and not (tmp_path / "o.pth").exists()


@pytest.mark.slow
def test_an_imported_tf_same_checkpoint_round_trips_through_ship_and_export(movenet, tmp_path):
    from dataclasses import replace

    from fixtures import TINY

    from deeppose.models.checkpoint import save_checkpoint, ship_checkpoint
    from deeppose.models.factory import create_model
    from deeppose.models.meta import ModelMeta
    from deeppose.models.tflite_import import save_backbone
    from deeppose.serve.export import export_onnx
    from deeppose.serve.predictor import Predictor

    save_backbone(*import_tflite_backbone(movenet), tmp_path / "movenet.pth")
    arch = replace(TINY, width=1.0, padding="tf_same", freeze_bn=True)
    model = create_model(arch, 14, 64, tmp_path / "movenet.pth")
    reference = MobileNetV2(padding="tf_same")
    load_backbone_weights(reference, tmp_path / "movenet.pth")
    torch.testing.assert_close(model.backbone.features[3].conv[0][0].weight, reference.features[3].conv[0][0].weight)
    meta = ModelMeta("stage1", "lsp14", 14, 64, model=arch)
    save_checkpoint(tmp_path / "s1.pt", model, meta)
    shipped = ship_checkpoint(tmp_path / "s1.pt", tmp_path / "shipped.pt", half=False)
    export_onnx(shipped, tmp_path / "s1.onnx")
    export_onnx(shipped, tmp_path / "s1_int8.onnx", int8=True, n_calibration=8)
    torch_p = Predictor.from_checkpoint(shipped)
    assert torch_p.meta.model.padding == "tf_same"
    photo = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    box = np.array([5.0, 5.0, 60.0, 80.0])
    joints = torch_p.predict(photo, box).joints
    assert np.abs(Predictor.from_checkpoint(tmp_path / "s1.onnx").predict(photo, box).joints - joints).max() < 1e-2
    int8 = Predictor.from_checkpoint(tmp_path / "s1_int8.onnx").predict(photo, box).joints
    assert np.abs(int8 - joints).max() / 80 < 0.05
    symmetric = create_model(replace(arch, padding="symmetric"), 14, 64)
    symmetric.load_state_dict(model.state_dict())
    with torch.no_grad():  # the padding is part of the network: the same weights run symmetric differ
        x = torch.from_numpy(photo[:64, :64]).permute(2, 0, 1)[None].contiguous()
        assert (symmetric.eval()(x) - model.eval()(x)).abs().max() > 1e-3


def test_movenet_pyramid_and_keypoint_maps_match_the_interpreter(movenet, lsp_root, tmp_path):
    from deeppose.models.checkpoint import save_checkpoint
    from deeppose.models.movenet_import import import_movenet_pose
    from deeppose.serve.predictor import Predictor
    from deeppose.skeleton import COCO17, LSP14

    model, meta = import_movenet_pose(movenet, 192)
    assert meta.model.head == "movenet" and meta.model.padding == "tf_same" and "imported" in meta.provenance
    photo, tflite = interpreter_tensors(movenet, lsp_root, "im1010.jpg")

    x = torch.from_numpy(photo).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        features = model.eval().features(x)
        pyramid = model.head.pyramid(features)[0].permute(1, 2, 0).numpy()
        logits = model.head.heatmap_logits(features)[0].permute(1, 2, 0).numpy()
    ref = tflite("center_net_mobile_net_v2fpn_feature_extractor/model_1/re_lu_2/Relu")[0]
    assert pyramid.shape == ref.shape == (48, 48, 24)
    assert np.corrcoef(pyramid.ravel(), ref.ravel())[0, 1] > 0.99
    maps = tflite("kpt_heatmap_0/conv2d_5/BiasAdd")[0]  # int8: saturated above its range, so compare where below
    for joint in ("r_wrist", "l_knee", "r_shoulder", "l_ankle"):
        ours, theirs = logits[..., LSP14.index(joint)], maps[..., COCO17.index(joint)]
        assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.9, joint
    save_checkpoint(tmp_path / "movenet.pt", model, meta)
    prediction = Predictor.from_checkpoint(tmp_path / "movenet.pt").predict(photo, np.array([0, 0, 192, 192.0]))
    assert prediction.joints.shape == (14, 2) and np.isfinite(prediction.joints).all()
