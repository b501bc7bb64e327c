"""Import a TensorFlow Lite MobileNetV2 backbone (MoveNet's, or the ImageNet classifier's) into our `MobileNetV2`.

    >>> state, provenance = import_tflite_backbone("movenet_single_pose_lightning_ptq.tflite")  # doctest: +SKIP
    >>> save_backbone(state, provenance, "runs/weights/movenet_backbone.pth")  # doctest: +SKIP

The file is read with Google's LiteRT interpreter (`ai-edge-litert`, an optional dependency: `pip install
deeppose[import]`; prediction never needs it). Each of the 52 backbone convolutions is found by its Keras layer
name (`Conv1`, `expanded_conv_depthwise`, `block_1_expand` ... `block_16_project`, `Conv_1`), its int8 weights and
int32 bias dequantized per output channel, `(q - zero_point) * scale`, and transposed from TFLite's NHWC to torch's
OIHW layout. TFLite folds BatchNorm into the convolutions; each of our BatchNorm layers is set to add the folded
bias back exactly in eval mode (`fold_bias_into_bn`). TF's input scaling `x / 127.5 - 1` is folded into the first
convolution (`fold_input_scaling`), since our networks feed it ImageNet-normalized images.

The imported network runs exactly as the TFLite one only with `MobileNetV2(padding="tf_same")`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from deeppose.data.io import read_image
from deeppose.errors import DeepPoseError
from deeppose.files import atomic_write, write_json
from deeppose.models.mobilenet_v2 import MobileNetV2
from deeppose.models.normalize import IMAGENET_MEAN, IMAGENET_STD, InputNormalize

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def backbone_layer_names() -> list[str]:
    """The Keras names of MobileNetV2's 52 convolutions, in torchvision's `features` order."""
    names = ["Conv1", "expanded_conv_depthwise", "expanded_conv_project"]
    for block in range(1, 17):
        names += [f"block_{block}_expand", f"block_{block}_depthwise", f"block_{block}_project"]
    return names + ["Conv_1"]


def backbone_convolutions(backbone: MobileNetV2) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every (convolution, its BatchNorm) pair of `backbone.features`, in execution order (52 of them)."""
    pairs, pending = [], None
    for module in backbone.features.modules():
        if isinstance(module, nn.Conv2d):
            pending = module
        elif isinstance(module, nn.BatchNorm2d) and pending is not None:
            pairs.append((pending, module))
            pending = None
    return pairs


def _interpreter(path: Path, preserve_all_tensors: bool = False) -> Any:
    """A LiteRT interpreter on `path`, allocated; DeepPoseError naming the file when it cannot be read."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise DeepPoseError(path, "reading TFLite files needs the LiteRT interpreter: pip install "
                                  "'deeppose[import]' (ai-edge-litert)") from None
    if not path.is_file():
        raise DeepPoseError(path, "TFLite file not found")
    try:
        interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=preserve_all_tensors,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise DeepPoseError(path, f"not a readable TFLite model ({str(exc).splitlines()[0][:160]})") from None
    return interpreter


def dequantize(values: np.ndarray, quantization: dict[str, Any]) -> np.ndarray:
    """A quantized constant as float32: (q - zero_point) * scale, per channel along `quantized_dimension`.

    Args:
        values: the stored integers (int8 weights, int32 biases), any shape; float tensors pass through.
        quantization: LiteRT's `quantization_parameters` (scales (C,), zero_points (C,), quantized_dimension).
    """
    scales = np.asarray(quantization["scales"], np.float64)
    if values.dtype in (np.float32, np.float64) or scales.size == 0:
        return values.astype(np.float32)
    zero = np.asarray(quantization["zero_points"], np.float64)
    shape = [1] * values.ndim
    if scales.size > 1:
        shape[quantization["quantized_dimension"]] = scales.size
    return ((values.astype(np.float64) - zero.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def _to_oihw(weight: np.ndarray, depthwise: bool) -> np.ndarray:
    """TFLite conv weights -> torch layout: CONV_2D (O, H, W, I) -> (O, I, H, W); DEPTHWISE (1, H, W, C) ->
    (C, 1, H, W)."""
    return weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)


def read_convolutions(path: Path) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Every convolution of a TFLite file, in execution order: (op type, its weight tensor's name, (O, I, kh, kw)
    float32 weight, (O,) float32 bias), dequantized (`dequantize`) and in torch's layout."""
    interpreter = _interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    convs = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 (LiteRT's only listing of the graph's ops)
        if op["op_name"] not in CONV_OPS or len(op["inputs"]) < 3:
            continue
        w_info, b_info = tensors[op["inputs"][1]], tensors[op["inputs"][2]]
        weight = dequantize(interpreter.get_tensor(w_info["index"]), w_info["quantization_parameters"])
        bias = dequantize(interpreter.get_tensor(b_info["index"]), b_info["quantization_parameters"])
        convs.append((op["op_name"], w_info["name"], _to_oihw(weight, op["op_name"] == "DEPTHWISE_CONV_2D"), bias))
    return convs


def owner(name: str, patterns: dict[str, tuple[str, ...]]) -> str | None:
    """The layer a tensor name belongs to: of `patterns` ({layer: substrings, any of which names it}), the one in
    the name's first part.

    TFLite names a shared or folded tensor after every layer it came from, joined by ";", its own op's layer
    first (e.g. "block_2_depthwise/depthwise;...block_3_depthwise/depthwise" is block_2's weight); within that
    part the substring found earliest wins.
    """
    name = name.split(";")[0]
    found = {layer: min(name.find(t) for t in texts if t in name) for layer, texts in patterns.items()
             if any(t in name for t in texts)}
    return min(found, key=found.get) if found else None


def pick_convolutions(path: Path, convs: list[tuple[str, str, np.ndarray, np.ndarray]],
                      patterns: dict[str, tuple[str, tuple[str, ...]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer: (weight, bias)} for each layer of `patterns` ({layer: (op type, name substrings)}), matched by
    `owner`; DeepPoseError naming the file when a layer is missing or found twice."""
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for op, name, weight, bias in convs:
        layer = owner(name, {k: texts for k, (kind, texts) in patterns.items() if kind == op})
        if layer is None:
            continue
        if layer in found:
            raise DeepPoseError(path, f"layer {layer} appears in more than one convolution")
        found[layer] = (weight, bias)
    missing = [n for n in patterns if n not in found]
    if missing:
        raise DeepPoseError(path, f"not a MoveNet / MobileNetV2 1.0 model: no convolution for "
                                  f"{', '.join(missing[:4])}{'...' if len(missing) > 4 else ''} ({len(missing)} of "
                                  f"{len(patterns)} missing)")
    return found


def read_backbone_convolutions(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The 52 backbone convolutions of a TFLite MobileNetV2 as (layer name, (O, I, kh, kw) weight, (O,) bias), float32.

    Each is matched to its Keras layer by the name of its weight tensor (".../model/<layer>/..." or
    ".../model/<layer>_BN/...", the latter where BatchNorm folding renamed it; `owner`).
    """
    names = backbone_layer_names()
    patterns = {n: ("DEPTHWISE_CONV_2D" if "depthwise" in n else "CONV_2D", (f"model/{n}/", f"model/{n}_BN/"))
                for n in names}
    found = pick_convolutions(path, read_convolutions(path), patterns)
    return [(n, *found[n]) for n in names]


def fold_input_scaling(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The first convolution rewritten for ImageNet-normalized input z = (x01 - mean) / std instead of TF's
    t = 2 x01 - 1 = 2 std z + (2 mean - 1): W' = 2 std W, b' = b + sum W (2 mean - 1).

    Exact wherever the kernel does not reach the zero padding (TF pads t with 0, we pad z with 0).

    Args:
        weight: (O, 3, kh, kw) the TF convolution's weights.
        bias: (O,) its (folded BatchNorm) bias.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=weight.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=weight.dtype).view(1, 3, 1, 1)
    return weight * 2 * std, bias + (weight * (2 * mean - 1)).sum(dim=(1, 2, 3))


def fold_bias_into_bn(bn: nn.BatchNorm2d, bias: torch.Tensor, mean: torch.Tensor | None = None,
                      var: torch.Tensor | None = None) -> None:
    """Set `bn` so that in eval mode it adds `bias` (C,) to its input and nothing else, in place.

    With running statistics (mean, var) of the convolution's output on real photos, gamma = sqrt(var + eps) and
    beta = bias + mean: eval mode computes (y - mean) / sqrt(var + eps) * gamma + beta = y + bias exactly, and train
    mode, normalizing by a batch's own statistics, starts close to it. Without statistics: mean 0, var 1.
    """
    mean = torch.zeros_like(bias) if mean is None else mean
    var = torch.ones_like(bias) if var is None else var
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(bias + mean)
        bn.num_batches_tracked.zero_()


@torch.inference_mode()
def conv_output_statistics(backbone: MobileNetV2, images: Iterable[torch.Tensor]
                           ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel (mean, var) of every backbone convolution's output (before its BatchNorm), over `images`.

    Args:
        backbone: in eval mode, its BatchNorm layers already adding the folded biases.
        images: batches of (B, 3, H, W) ImageNet-normalized photos.
    """
    pairs = backbone_convolutions(backbone)
    sums = [[0.0, 0.0, 0] for _ in pairs]

    def hook(k: int):  # noqa: ANN202
        def record(_module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
            y = out.double()
            sums[k][0] = sums[k][0] + y.sum(dim=(0, 2, 3))
            sums[k][1] = sums[k][1] + (y * y).sum(dim=(0, 2, 3))
            sums[k][2] += y.numel() // y.shape[1]
        return record

    handles = [conv.register_forward_hook(hook(k)) for k, (conv, _) in enumerate(pairs)]
    try:
        backbone.eval()
        for batch in images:
            backbone.forward_features(batch)
    finally:
        for h in handles:
            h.remove()
    if not sums[0][2]:
        raise ValueError("conv_output_statistics: no images")
    stats = []
    for total, squares, n in sums:
        mean = total / n
        stats.append((mean.float(), (squares / n - mean * mean).clamp_min(0).float()))
    return stats


def import_tflite_backbone(path: str | Path, calibration: Iterable[torch.Tensor] = ()
                           ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A TFLite MobileNetV2 backbone as our `MobileNetV2` state_dict (torchvision layout, no classifier), and its
    provenance.

    Args:
        path: a .tflite file whose backbone is a Keras MobileNetV2 1.0 (MoveNet, the ImageNet classifier).
        calibration: batches of (B, 3, H, W) ImageNet-normalized photos on which to measure each BatchNorm's running
            statistics (`fold_bias_into_bn`); empty: mean 0, var 1 (eval mode is exact either way).

    Returns:
        (state_dict for `MobileNetV2(padding="tf_same")` without `classifier.*`, provenance dict).
    """
    path = Path(path)
    layers = read_backbone_convolutions(path)
    backbone = MobileNetV2(padding="tf_same")
    pairs = backbone_convolutions(backbone)
    biases = []
    for k, ((name, weight, bias), (conv, bn)) in enumerate(zip(layers, pairs)):
        w, b = torch.from_numpy(weight), torch.from_numpy(bias)
        if k == 0:
            w, b = fold_input_scaling(w, b)
        if tuple(w.shape) != tuple(conv.weight.shape):
            raise DeepPoseError(path, f"layer {name}: weight {tuple(w.shape)}, MobileNetV2 1.0 has "
                                      f"{tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(w)
        fold_bias_into_bn(bn, b)
        biases.append(b)
    batches = list(calibration)
    if batches:
        for (_, bn), b, (mean, var) in zip(pairs, biases, conv_output_statistics(backbone, batches)):
            fold_bias_into_bn(bn, b, mean, var)
    state = {k: v.clone() for k, v in backbone.state_dict().items() if not k.startswith("classifier.")}
    provenance = {"source": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                  "reader": "ai-edge-litert", "layers": len(layers), "padding": "tf_same",
                  "input_scaling": "TF x/127.5-1 folded into features.0.0 for ImageNet mean/std input",
                  "batchnorm": "eval mode adds the folded bias exactly; running statistics measured on "
                               f"{sum(len(b) for b in batches)} calibration photos" if batches else
                               "eval mode adds the folded bias exactly; running statistics mean 0, var 1"}
    return state, provenance


def photo_batches(paths: list[Path], size: int = 192, batch_size: int = 16) -> list[torch.Tensor]:
    """Photos read and resized (whole, square) to `size`, ImageNet-normalized, in batches of (B, 3, size, size):
    calibration input for `import_tflite_backbone`."""
    normalize = InputNormalize()
    images = [cv2.resize(read_image(p), (size, size), interpolation=cv2.INTER_AREA) for p in paths]
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) if images else torch.zeros(0)
    return [normalize(stacked[i: i + batch_size]) for i in range(0, len(images), batch_size)]


def save_backbone(state: dict[str, torch.Tensor], provenance: dict[str, Any], out: str | Path) -> None:
    """Write the state_dict (loads with `torch.load(weights_only=True)`) and `<out>.json` with its provenance,
    each atomically."""
    out = Path(out)
    atomic_write(out, lambda tmp: torch.save(state, tmp))
    write_json(out.with_suffix(out.suffix + ".json"), provenance)
