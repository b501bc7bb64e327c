"""Build a model from its architecture name; load backbone weights in torchvision's layout.

>>> model = create_model("mobilenet_v2", num_joints=14, input_size=160)
>>> model(torch.zeros(2, 3, 160, 160, dtype=torch.uint8)).shape
torch.Size([2, 14, 2])
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from deeppose.errors import DeepPoseError
from deeppose.models.alexnet import DeepPoseAlexNet
from deeppose.models.mobilenet_v2 import MobileNetV2
from deeppose.models.regressor import PYRAMID_HEADS, BackboneRegressor
from deeppose.models.resnet import ResNet
from deeppose.models.small import SmallRegressor

log = logging.getLogger(__name__)

ARCHS = ("deeppose-alexnet", "mobilenet_v2", "resnet18", "resnet34", "resnet50", "small")
# ImageNet classifier keys that a pose model never uses.
CLASSIFIER_PREFIXES = ("classifier.", "fc.")


def build_backbone(arch: str, width: float = 1.0) -> nn.Module:
    """A bare backbone ("mobilenet_v2", "resnet18", "resnet34", "resnet50")."""
    if arch == "mobilenet_v2":
        return MobileNetV2(width_mult=width)
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


def create_model(arch: str, num_joints: int, input_size: int, dropout: float | None = None, width: float = 1.0,
                 stride: int = 32, reduce: int = 128, hidden: int = 0, backbone_weights: str | Path | None = None,
                 freeze_bn: bool = False, head: str = "fc", top_stride: int = 32, score: bool = False,
                 refine: bool = False) -> nn.Module:
    """Create a stage-1 regressor.

    Args:
        arch: one of ARCHS. "deeppose-alexnet" is the paper's network (input 220, dropout 0.6 by default);
            "small" is the demo network; the others put an FC regression head on a torchvision backbone.
        num_joints: K.
        input_size: side of the square input crop.
        dropout: dropout before the fully-connected layers (None: the architecture's default).
        width: channel multiplier (MobileNetV2) or first-layer width / 16 ("small").
        stride, reduce, hidden: where and how the FC head reads the backbone (see BackboneRegressor).
        backbone_weights: optional torchvision-layout ImageNet weights for the backbone.
        freeze_bn: keep the backbone's BatchNorm statistics fixed while training (see BackboneRegressor).
        head: "fc", "soft_argmax", "dsnt" or "heatmap" for the backbone architectures (see BackboneRegressor).
        top_stride: deepest backbone level of the heatmap heads (see BackboneRegressor).
        score, refine: the FC head's learned confidence; the heatmap head's position refinement.
    """
    if arch == "deeppose-alexnet":
        if input_size != 220:
            raise ValueError(f"deeppose-alexnet takes 220 x 220 inputs (the paper's), got {input_size}")
        if backbone_weights:
            raise ValueError("deeppose-alexnet is trained from scratch, as in the paper; no backbone weights")
        return DeepPoseAlexNet(num_joints, 0.6 if dropout is None else dropout)
    if arch == "small":
        return SmallRegressor(num_joints, input_size, width=round(16 * width),
                              dropout=0.1 if dropout is None else dropout)
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")
    backbone = build_backbone(arch, width)
    if backbone_weights:
        load_backbone_weights(backbone, backbone_weights)
    drop_classifier(backbone)
    if head in PYRAMID_HEADS and top_stride < 32 and hasattr(backbone, "truncate"):
        backbone.truncate(top_stride)
    return BackboneRegressor(backbone, num_joints, input_size, stride, reduce, hidden,
                             0.2 if dropout is None else dropout, freeze_bn, head, top_stride, score, refine)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of a model (a pose model's backbone carries no ImageNet classifier)."""
    return sum(p.numel() for p in model.parameters())
