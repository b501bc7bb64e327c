"""Typed run configuration: dataclasses loadable from YAML/JSON and overridable with `key=value` pairs.

    cfg = load_config("configs/mobilenet_v2_cpu.yaml", ["optim.lr=3e-4", "data.input_size=128"])

The resolved config is saved as JSON beside every checkpoint; `config_from_dict` rebuilds it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deeppose.data.transforms import Augmentation
from deeppose.errors import DeepPoseError


@dataclass
class DataConfig:
    """What to train on.

    Attributes:
        train: "dataset:split" entries concatenated for training (all must share one skeleton).
        root: folder holding the dataset folders ("" -> $DEEPPOSE_DATA, default ../shared/data).
        val_size: images carved out of the first training entry for validation (model selection), when `val` is "".
        val: a "dataset:split" of its own to validate on instead (e.g. "lspet:val": LSPET's held-out whole photos,
            people in their annotated boxes); none of its photos may be in `train`.
        joints_box: datasets (by name) whose crop box is drawn around the joints (side joints_box_scale x
            the pose extent) instead of the whole image: LSPET people fill far less of their images than
            LSP people do (median image/pose ratio 2.5 vs 1.33), so whole-image crops would shrink them.
        input_size: side of the square network input.
        num_workers: DataLoader worker processes.
        augment: the random transform ranges of training crops.
    """

    train: list[str] = field(default_factory=lambda: ["lsp:train", "lspet:all"])
    root: str = ""
    val_size: int = 200
    val: str = ""
    joints_box: list[str] = field(default_factory=lambda: ["lspet"])
    joints_box_scale: float = 1.33
    input_size: int = 160
    num_workers: int = 1
    augment: Augmentation = field(default_factory=lambda: Augmentation(30.0, (0.75, 1.25), 0.08, 0.5, 0.2, 0.2))


@dataclass
class ModelConfig:
    """Architecture (see models.factory.create_model).

    Attributes:
        head: "fc" (DeepPose), "soft_argmax" / "dsnt" (DSNT transform), "heatmap" (Tompson).
        stride: where the FC head reads the backbone, or the heatmap stride of the other heads.
        score: the FC head learns a per-joint confidence (the heatmap heads have theirs built in).
        refine: Tompson's position refinement on the heatmap head.
        backbone_weights: torchvision-layout ImageNet weights for the backbone ("": random init), e.g. the ImageNet
            MobileNetV2 or MoveNet's backbone imported by `deeppose import-tflite`.
        padding: how the backbone's strided convolutions pad: "symmetric" (PyTorch's) or "tf_same" (TensorFlow's
            SAME, for weights trained in TF such as MoveNet's: they reproduce the original only so).
        freeze_bn: keep the backbone's BatchNorm statistics fixed while training (their affine parameters learn).
        init: a deeppose checkpoint whose weights start this network (fine-tuning; of a cascade checkpoint, its
            stage 1): it must have this architecture and skeleton. It replaces every weight, so backbone_weights
            is not read when it is set.
    """

    arch: str = "mobilenet_v2"
    head: str = "fc"
    width: float = 1.0
    dropout: float | None = None
    stride: int = 32
    top_stride: int = 32
    reduce: int = 128
    hidden: int = 0
    backbone_weights: str = ""
    padding: str = "symmetric"
    freeze_bn: bool = False
    channels_last: bool = True
    score: bool = True
    refine: bool = False
    init: str = ""


@dataclass
class HeatmapLossConfig:
    """The losses of the heatmap heads (see each head's `loss` in `deeppose.heads`).

    Attributes:
        sigma: width in heatmap cells of the Gaussian targets: Tompson's MSE target, DSNT's sigma_t.
        regularizer: the DSNT head's regularizer on its normalized maps: "js" (Jensen-Shannon divergence to
            the Gaussian target), "variance" (their variance towards sigma^2) or "" (none: the coordinate loss
            alone, i.e. the soft-argmax head).
        weight: lambda, the regularizer's weight.
        fine_sigma: width in window samples of the position refinement's Gaussian target.
    """

    sigma: float = 1.0
    regularizer: str = "js"
    weight: float = 1.0
    fine_sigma: float = 1.0


@dataclass
class OptimConfig:
    """Optimizer and schedule.

    Attributes:
        name: "adamw" (with linear warm-up then cosine decay) or "adagrad" (the paper: lr 5e-4, constant).
        batch_size: images per step.
        warmup_steps: linear warm-up length (adamw).
        min_lr_ratio: the cosine decays to lr * min_lr_ratio.
        grad_clip: max gradient norm (0: off).
        backbone_lr: the backbone's learning rate as a fraction of `lr` (adamw): below 1 a pretrained backbone
            (MoveNet's) moves less than the new head, so it keeps more of what it knew.
        lr_scaling: with N processes (torchrun) each takes `batch_size` images per step, so the effective batch is
            N x batch_size; lr is scaled by "linear" (x N, Goyal et al. 2017), "sqrt" (x sqrt N) or "none".
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    warmup_steps: int = 300
    min_lr_ratio: float = 0.01
    grad_clip: float = 0.0
    lr_scaling: str = "linear"
    backbone_lr: float = 1.0


@dataclass
class CascadeConfig:
    """DeepPose's refinement stages s >= 2 (Eq. 6-8); `stages: 1` means a stage-1 regressor alone.

    Attributes:
        stages: S, the number of stages of the cascade (paper: 3).
        sigma: joint box side relative to the pose diameter, b_i = (y_i, sigma diam(y), sigma diam(y))
            (Eq. 7; paper: 2.0 on LSP, 1.0 on FLIC).
        crop_size: side of the sub-image N(x; b_i) a refinement stage sees.
        source_size: resolution at which the person box is sampled for the sub-images (the sub-images take
            their pixels from it, so it should reach the images' native resolution).
        draws: simulated joint boxes per joint per image per step (Eq. 8; paper: 40 per joint per image
            over the whole training, here drawn afresh every epoch).
        stats_quantile: fit each joint's displacement Normal on the errors up to this quantile of their
            length (1.0: all, the paper; below 1 leaves out the gross errors no sub-image can fix).
        inside_only: train only on simulated boxes that contain the true joint (a soft-argmax head cannot
            point outside its crop anyway).
        joints: names of the joints the refinement stages refine; empty: all K (the paper). Refining only
            the limb joints (elbows, wrists, knees, ankles) pays for a larger, sharper sub-image within the
            same inference time; the other joints keep their stage-1 position.
        stage1: a trained stage-1 (or shorter cascade) checkpoint to build on; "" trains stage 1 first
            from the top-level model/optim/epochs settings.
        model, optim, loss, heatmap, epochs, max_minutes: the training of each refinement stage (same
            architecture family every stage, separate parameters; any head, with its loss).
    """

    stages: int = 1
    sigma: float = 2.0
    crop_size: int = 40
    source_size: int = 256
    draws: int = 2
    stats_quantile: float = 1.0
    inside_only: bool = False
    joints: list[str] = field(default_factory=list)
    stage1: str = ""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(head="soft_argmax", stride=4, top_stride=8,
                                                                   reduce=32, dropout=0.0))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(batch_size=16))
    loss: str = "l1"
    heatmap: HeatmapLossConfig = field(default_factory=HeatmapLossConfig)
    epochs: float = 10
    max_minutes: float = 0.0


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        loss: the coordinate loss of the fc, soft_argmax and dsnt heads: "l2" (DeepPose Eq. 4), "l1",
            "smooth_l1" or "euclidean" (DSNT's); "mse" for the heatmap head (Tompson: MSE on heatmaps).
        heatmap: targets and regularizers of the heatmap heads.
        loss_mask: "labelled" (every joint with a coordinate, LSP's occluded ones included) or "visible".
        epochs: passes over the training data; the schedule spans all of them. A fractional last epoch is cut
            short (e.g. 2.5: two passes and half of a third), so a time budget can be met to the step.
        max_minutes: stop (with a checkpoint) after this much training wall time, summed over resumed calls
            (0: no limit).
        checkpoint_minutes: also checkpoint inside an epoch this often, so a killed run loses little.
        val_alpha: PCK threshold used to pick the best checkpoint.
        cascade: refinement stages on top of the stage-1 regressor (model/optim/loss/epochs above).
        device: "auto" (a GPU when torch sees one, else the CPU), "cpu" or "cuda".
        precision: "auto" (bf16 autocast on a GPU that has it, else fp16 with a gradient scaler; fp32 on the
            CPU), "fp32", "bf16" or "fp16".
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    loss: str = "l1"
    heatmap: HeatmapLossConfig = field(default_factory=HeatmapLossConfig)
    loss_mask: str = "labelled"
    epochs: float = 10
    max_minutes: float = 0.0
    checkpoint_minutes: float = 10.0
    val_alpha: float = 0.2
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """JSON-able dict of a config (tuples become lists)."""
    return json.loads(json.dumps(asdict(cfg)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/JSON/CLI value to the annotated type `tp`, or raise DeepPoseError."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise DeepPoseError(None, f"config {where}: expected a mapping, got {value!r}")
        return build_config(tp, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), where)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise DeepPoseError(None, f"config {where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        items = [_coerce(v, args[0], where) for v in value]
        if origin is tuple:
            if len(items) != len(args):
                raise DeepPoseError(None, f"config {where}: expected {len(args)} values, got {value!r}")
            return tuple(items)
        return items
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise DeepPoseError(None, f"config {where}: expected true/false, got {value!r}")
    if tp in (int, float, str):
        try:
            if isinstance(value, str) and tp is not str:
                value = yaml.safe_load(value)
            if tp is int and (isinstance(value, bool) or isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            raise DeepPoseError(None, f"config {where}: expected {tp.__name__}, got {value!r}") from None
    return value


def build_config(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """An instance of the config dataclass `cls` from a nested dict: unknown keys refused, values coerced to the
    annotated types (DeepPoseError naming the key), a partial section overriding that field's own defaults."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise DeepPoseError(None, f"config: unknown key(s) {', '.join(prefix + k for k in sorted(unknown))}; "
                                  f"known under {prefix or 'top level'}: {', '.join(sorted(names))}")
    defaults = {f.name: f.default_factory() for f in dataclasses.fields(cls)
                if f.default_factory is not dataclasses.MISSING}
    kwargs = {}
    for k, v in data.items():
        if dataclasses.is_dataclass(hints[k]) and isinstance(v, dict) and k in defaults:
            # a partial section overrides the field's own defaults (which may differ from its class defaults)
            v = {**json.loads(json.dumps(asdict(defaults[k]))), **v}
        kwargs[k] = _coerce(v, hints[k], prefix + k)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig from its dict (missing keys take their defaults)."""
    return build_config(TrainConfig, data)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides to a nested dict (values parsed later against the dataclass types)."""
    for item in overrides:
        if "=" not in item:
            raise DeepPoseError(None, f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DeepPoseError(None, f"override {key!r}: {part} is not a section")
        node[parts[-1]] = value
    return data


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON config file as a mapping; DeepPoseError naming it when missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DeepPoseError(path, f"malformed YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DeepPoseError(path, "a config must be a mapping of sections")
    return data


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML or JSON config (None: defaults), apply overrides, and validate the types."""
    data: dict[str, Any] = read_config_file(path) if path else {}
    return config_from_dict(apply_overrides(data, list(overrides)))
