"""ONNX export of what a user runs (`deeppose export`), and its static int8 quantization with ONNX Runtime.

    export_onnx("models/deeppose_movenet_people.pt", "model.onnx", int8=True)

writes model.onnx (the pose graph: stage 1 and the cascade stages, decoded to box-normalized joints and confidences),
the finder's graph when the checkpoint has one (model.detector.onnx: the person detector's centre logits and offsets;
or model.localizer.onnx: the one-person localizer's coarse joints and presence logit; the sidecar's "localizer" entry
names it, whichever it is), and model.json beside them: what inference needs (the models' metadata, input sizes,
skeleton, the normalization inside the graphs, precision, files). Inputs are uint8 RGB (B, 3, S, S), the batch
dynamic. The crops, the box rule and its re-crops stay in Python (`serve.predictor`), around the graphs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeppose.data.registry import load_dataset
from deeppose.data.torch_dataset import CropDataset
from deeppose.data.whole_image import WholeImageDataset
from deeppose.errors import DeepPoseError
from deeppose.files import atomic_write, write_json
from deeppose.heads import head_output
from deeppose.models.cascade import Cascade
from deeppose.models.checkpoint import model_from_checkpoint
from deeppose.models.meta import ModelMeta, meta_from_dict, meta_to_dict
from deeppose.models.normalize import IMAGENET_MEAN, IMAGENET_STD
from deeppose.paths import data_root

EXPORT_FORMAT = "deeppose-onnx"
EXPORT_VERSION = 1
OPSET = 18
# Only the convolutions (the time): the graphs' matrix products are the crops' affine maps, whose 8-bit versions
# move the crops (LSP PCK@0.2 0.78 -> 0.57 when they were quantized too).
QUANTIZED_OPS = ["Conv"]


class PoseGraph(nn.Module):
    """The pose network as exported: (B, 3, S, S) uint8 crops [and (B, 3, R, R) sources for a cascade] ->
    joints (B, n, K, 2) box-normalized, every stage, and confidence (B, K)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, sources: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.model, Cascade):
            return self.model.forward_with_confidence(images, sources)
        out = head_output(self.model, images)
        return out.joints[:, None], out.confidence


class FinderGraph(nn.Module):
    """The finder as exported: (B, 3, S, S) uint8 squared photos -> the person detector's centre logits
    (B, 1, G, G) and offsets (B, 2K, G, G), or the localizer's joints (B, K, 2) and presence logit (B,)."""

    def __init__(self, finder: nn.Module) -> None:
        super().__init__()
        self.finder = finder

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.finder(images)


def _inverse_3x3(x: Any, check_errors: bool = False) -> tuple[Any, Any]:
    """ONNX for aten.linalg_inv_ex on (..., 3, 3) matrices (the crops' affine maps): the adjugate over the
    determinant. ONNX has no matrix inverse; ONNX Script builds this graph at export."""
    from onnxscript import opset18 as op

    def e(i: int, j: int) -> Any:
        return op.Gather(op.Gather(x, op.Constant(value_int=i), axis=-2), op.Constant(value_int=j), axis=-1)

    a, b, c, d, f, g, h, i, k = (e(r, s) for r in range(3) for s in range(3))
    cof = [[f * k - g * i, c * i - b * k, b * g - c * f],
           [g * h - d * k, a * k - c * h, c * d - a * g],
           [d * i - f * h, b * h - a * i, a * f - b * d]]
    det = a * cof[0][0] + b * cof[1][0] + c * cof[2][0]
    rows = [op.Concat(*(op.Unsqueeze(v / det, op.Constant(value_ints=[-1])) for v in row), axis=-1) for row in cof]
    inverse = op.Concat(*(op.Unsqueeze(r, op.Constant(value_ints=[-2])) for r in rows), axis=-2)
    info = op.Cast(op.ReduceSum(det, keepdims=0) * op.Constant(value_float=0.0), to=6)  # 0: no error check
    return inverse, info


def export_graph(module: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str], path: Path) -> Path:
    """`torch.onnx.export` (the dynamo exporter) of `module` with a dynamic batch, written atomically."""
    dynamic = tuple({0: torch.export.Dim.DYNAMIC} for _ in inputs)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), inputs, str(tmp), input_names=input_names, output_names=output_names,
                              dynamo=True, opset_version=OPSET, dynamic_shapes=dynamic, verbose=False,
                              external_data=False,  # one file: the weights inside
                              custom_translation_table={torch.ops.aten.linalg_inv_ex.default: _inverse_3x3})

    return atomic_write(path, write)


def calibration_set(spec: str, root: str | Path | None = None):  # noqa: ANN201 (a PoseDataset)
    """The images int8 calibration reads: `dataset:split` of the training data; the test split is refused (it is
    for reporting only)."""
    name, _, split = spec.partition(":")
    split = split or "train"
    if split == "test":
        raise DeepPoseError(None, f"--calibration {spec}: calibrate on training data, never on the test split")
    base = Path(root) if root else data_root()
    return load_dataset(name, base / name, split)


class _Batches:
    """An ONNX Runtime CalibrationDataReader over a torch dataset's items: feeds {input name: uint8 batch}."""

    def __init__(self, dataset: torch.utils.data.Dataset, keys: dict[str, str], batch_size: int = 8) -> None:
        self.loader = iter(torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0))
        self.keys = keys

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.loader, None)
        return None if batch is None else {name: batch[key].numpy() for name, key in self.keys.items()}


def quantize(fp32: Path, int8: Path, reader: _Batches) -> Path:
    """Static int8 quantization (QDQ, per-channel int8 weights, uint8 activations calibrated on `reader`) of the
    convolutions (`QUANTIZED_OPS`), where the time goes; the geometry (crops, decoding) stays in float."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    prepared = int8.with_name(f".{int8.stem}.pre.onnx")
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        atomic_write(int8, lambda tmp: quantize_static(
            str(prepared), str(tmp), reader, quant_format=QuantFormat.QDQ, per_channel=True,
            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, op_types_to_quantize=QUANTIZED_OPS))
    finally:
        prepared.unlink(missing_ok=True)
    return int8


def export_onnx(checkpoint: str | Path, out: str | Path, int8: bool = False, calibration: str = "lsp:train",
                n_calibration: int = 64, root: str | Path | None = None, model_version: str | None = None
                ) -> dict[str, Any]:
    """Export a checkpoint (stage 1, cascade or pipeline) to `out` (see the module doc); with `int8`, the graphs
    are quantized on `n_calibration` images of `calibration` (`dataset:split`, never test). `model_version` (e.g.
    the release date, "2026.12.02") is written into the description, which `deeppose --version` reads.

    Returns:
        the sidecar written to out.with_suffix(".json").
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise DeepPoseError(out, "the export is written as an .onnx file (and a .json beside it)")
    model, meta = model_from_checkpoint(checkpoint)
    pose, pose_meta, localizer, loc_meta = model, meta, None, None
    if meta.kind == "pipeline":
        pose, pose_meta, localizer, loc_meta = model.pose, meta.pose, model.localizer, meta.localizer
    elif meta.kind not in ("stage1", "cascade"):
        raise DeepPoseError(checkpoint, f"cannot export a {meta.kind} alone; export a pose model or a pipeline")
    dataset = calibration_set(calibration, root) if int8 else None
    files = {"pose": _export_pose(pose, pose_meta, out, dataset, n_calibration)}
    if localizer is not None:
        files["localizer"] = _export_finder(localizer, loc_meta, out.with_name(f"{out.stem}.{loc_meta.kind}.onnx"),
                                            dataset, n_calibration)
    sidecar = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "model_version": model_version,
               "precision": "int8" if int8 else "fp32",
               "calibration": calibration if int8 else None, "exported_from": Path(checkpoint).name,
               "input": "uint8 RGB (B, 3, S, S); (x / 255 - mean) / std is inside the graphs",
               "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "skeleton": pose_meta.skeleton,
               "pose": {"file": files["pose"].name, "meta": meta_to_dict(pose_meta)},
               "localizer": None if localizer is None else {"file": files["localizer"].name,
                                                            "meta": meta_to_dict(loc_meta)}}
    write_json(out.with_suffix(".json"), sidecar)
    return sidecar


def _export_pose(pose: nn.Module, meta: ModelMeta, out: Path, dataset: Any, n: int) -> Path:
    s = meta.input_size
    images = torch.randint(0, 256, (2, 3, s, s), dtype=torch.uint8)
    inputs, keys = (images,), {"images": "image"}
    source = meta.cascade.source_size if meta.kind == "cascade" else None
    if source:
        inputs, keys = (images, torch.randint(0, 256, (2, 3, source, source), dtype=torch.uint8)), \
            {"images": "image", "sources": "source"}
    crops = None if dataset is None else CropDataset(_subset(dataset, n), s, source_size=source)
    return _export_part(PoseGraph(pose), inputs, keys, ["joints", "confidence"], out, crops)


def _export_finder(finder: nn.Module, meta: ModelMeta, out: Path, dataset: Any, n: int) -> Path:
    s = meta.input_size
    views = None if dataset is None else WholeImageDataset(_subset(dataset, n), s)
    names = ["centre_logits", "offsets"] if meta.kind == "detector" else ["joints", "presence_logit"]
    return _export_part(FinderGraph(finder), (torch.randint(0, 256, (2, 3, s, s), dtype=torch.uint8),),
                        {"images": "image"}, names, out, views)


def _export_part(graph: nn.Module, inputs: tuple[torch.Tensor, ...], keys: dict[str, str], output_names: list[str],
                 out: Path, calibration: torch.utils.data.Dataset | None) -> Path:
    """Export one graph (inputs named by `keys`: graph input -> calibration item key) to `out`: as is, or, given
    calibration items, through a temporary fp32 file quantized to int8."""
    fp32 = out if calibration is None else out.with_name(f".{out.stem}.fp32.onnx")
    export_graph(graph, inputs, list(keys), output_names, fp32)
    if calibration is None:
        return out
    try:
        return quantize(fp32, out, _Batches(calibration, keys))
    finally:
        fp32.unlink(missing_ok=True)


def _subset(dataset: Any, n: int) -> Any:
    """`n` images spread evenly over a dataset (a fixed choice, so an export is reproducible)."""
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(n, len(dataset))).round().astype(int))
    return dataset.subset(picks, dataset.split)


def read_export(path: str | Path) -> tuple[dict[str, Any], ModelMeta, ModelMeta | None]:
    """An export's sidecar (path: the .onnx or the .json) and its pose and localizer metadata; DeepPoseError naming
    the file when it is missing or not an export of this format."""
    sidecar_path = Path(path).with_suffix(".json")
    if not sidecar_path.is_file():
        raise DeepPoseError(sidecar_path, "no export description beside the ONNX model (write it with deeppose export)")
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        if sidecar.get("format") != EXPORT_FORMAT or sidecar.get("version") != EXPORT_VERSION:
            raise ValueError(f"format {sidecar.get('format')!r} version {sidecar.get('version')!r}")
        pose = meta_from_dict(sidecar["pose"]["meta"])
        loc = None if sidecar.get("localizer") is None else meta_from_dict(sidecar["localizer"]["meta"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DeepPoseError(sidecar_path, f"not a deeppose ONNX export description ({exc})") from None
    return sidecar, pose, loc
