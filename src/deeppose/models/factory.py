"""Build a model from its architecture name; load backbone weights in torchvision's layout.

>>> model = create_model(ModelConfig("mobilenet_v2"), num_joints=14, input_size=160)
>>> model(torch.zeros(2, 3, 160, 160, dtype=torch.uint8)).shape
torch.Size([2, 14, 2])
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from deeppose.config import ModelConfig
from deeppose.errors import DeepPoseError
from deeppose.heads import head_class
from deeppose.models.alexnet import DeepPoseAlexNet
from deeppose.models.mobilenet_v2 import MobileNetV2
from deeppose.models.regressor import BackboneRegressor
from deeppose.models.resnet import ResNet
from deeppose.models.small import SmallRegressor

log = logging.getLogger(__name__)

ARCHS = ("deeppose-alexnet", "mobilenet_v2", "resnet18", "resnet34", "resnet50", "small")
# ImageNet classifier keys that a pose model never uses.
CLASSIFIER_PREFIXES = ("classifier.", "fc.")


def build_backbone(arch: str, width: float = 1.0, padding: str = "symmetric") -> nn.Module:
    """A bare backbone ("mobilenet_v2", "resnet18", "resnet34", "resnet50"); `padding` "tf_same" (MobileNetV2
    only) pads its strided convolutions as TensorFlow does."""
    if arch == "mobilenet_v2":
        return MobileNetV2(width_mult=width, padding=padding)
    if padding != "symmetric":
        raise ValueError(f"padding {padding!r} exists for mobilenet_v2 only, not {arch}")
    if arch.startswith("resnet") and arch[6:].isdigit():
        return ResNet(int(arch[6:]))
    raise ValueError(f"unknown backbone {arch!r}; known: mobilenet_v2, resnet18, resnet34, resnet50")


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a torchvision-layout state_dict (weights_only=True), dropping the ImageNet classifier keys.

    Raises DeepPoseError naming the file when it is missing, not a state_dict, or does not fit the backbone.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepPoseError(path, "backbone weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DeepPoseError(path, f"not a loadable weights file ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DeepPoseError(path, f"expected a state_dict, got {type(state).__name__}")
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    dropped = [k for k in state if k.startswith(CLASSIFIER_PREFIXES)]
    state = {k: v for k, v in state.items() if k not in dropped}
    own = {k: v for k, v in backbone.state_dict().items() if not k.startswith(CLASSIFIER_PREFIXES)}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = "; ".join(f"{name}: {keys[:3]}{'...' if len(keys) > 3 else ''} ({len(keys)})" for name, keys in
                           (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise DeepPoseError(path, f"does not fit {type(backbone).__name__}: {detail}")
    backbone.load_state_dict(state, strict=False)
    log.info("loaded %d backbone tensors from %s (dropped classifier keys: %s)", len(state), path, dropped)


def drop_classifier(backbone: nn.Module) -> None:
    """Replace a backbone's ImageNet classifier (never used by a pose head) by an identity, in place, so
    checkpoints and shipped files do not carry its weights."""
    for name in ("classifier", "fc"):
        if isinstance(getattr(backbone, name, None), nn.Module):
            setattr(backbone, name, nn.Identity())


def unused_classifier_keys(state: dict) -> list[str]:
    """Keys of a backbone's ImageNet classifier in a pose model's state_dict (written by older versions)."""
    return [k for k in state if k.startswith(("backbone.classifier.", "backbone.fc."))]


def create_model(m: ModelConfig, num_joints: int, input_size: int,
                 backbone_weights: str | Path | None = None) -> nn.Module:
    """The one place an architecture config becomes a network (training builds it so, checkpoints rebuild it so).

    Args:
        m: the architecture: `m.arch` one of ARCHS ("deeppose-alexnet": the paper's network, input 220, dropout
            0.6 by default; "small": the demo network; the others: a torchvision backbone with the head
            `m.head` of `deeppose.heads.HEADS`), width, dropout (None: the architecture's default) and the
            head's settings. Its weights fields (backbone_weights, init) are not read here.
        num_joints: K.
        input_size: side of the square input crop.
        backbone_weights: torchvision-layout ImageNet weights for the backbone (None: random init).
    """
    if m.arch == "deeppose-alexnet":
        if input_size != 220:
            raise ValueError(f"deeppose-alexnet takes 220 x 220 inputs (the paper's), got {input_size}")
        if backbone_weights:
            raise ValueError("deeppose-alexnet is trained from scratch, as in the paper; no backbone weights")
        model: nn.Module = DeepPoseAlexNet(num_joints, 0.6 if m.dropout is None else m.dropout)
    elif m.arch == "small":
        model = SmallRegressor(num_joints, input_size, width=round(16 * m.width),
                               dropout=0.1 if m.dropout is None else m.dropout)
    else:
        model = regressor(m, num_joints, input_size, backbone_weights)
    return model.to(memory_format=torch.channels_last) if m.channels_last else model


def regressor(m: ModelConfig, num_joints: int, input_size: int, backbone_weights: str | Path | None = None
              ) -> BackboneRegressor:
    """A backbone and the head `m.head` (see `create_model`)."""
    if m.arch not in ARCHS:
        raise ValueError(f"unknown architecture {m.arch!r}; known: {', '.join(ARCHS)}")
    if input_size % m.stride:
        raise ValueError(f"input_size {input_size} must be a multiple of the feature stride {m.stride}")
    head = head_class(m.head)
    backbone = build_backbone(m.arch, m.width, m.padding)
    if backbone_weights:
        load_backbone_weights(backbone, backbone_weights)
    drop_classifier(backbone)
    m = replace(m, dropout=0.2 if m.dropout is None else m.dropout)
    return BackboneRegressor(backbone, head.build(backbone, num_joints, input_size, m), input_size, m.freeze_bn)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of a model (a pose model's backbone carries no ImageNet classifier)."""
    return sum(p.numel() for p in model.parameters())
