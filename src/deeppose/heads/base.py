"""What every pose head is and returns: the `Head` interface and its `HeadOutput`.

A head turns backbone features into K box-normalized joints (Eq. 1) and a per-joint confidence, and knows its own
training loss: the targets it encodes from the true joints, and how its output decodes back to coordinates. Each
head is one module of `deeppose.heads`, listed in the table `deeppose.heads.HEADS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from deeppose.errors import DeepPoseError
from deeppose.geometry import own_joint
from deeppose.heads.losses import check_coordinate_loss

if TYPE_CHECKING:
    from deeppose.config import HeatmapLossConfig, ModelConfig


@dataclass
class HeadOutput:
    """One forward pass of a pose network.

    Attributes:
        joints: (B, K, 2) box-normalized (x, y) (Eq. 1).
        confidence: (B, K) in [0, 1]: the heatmap peak (Tompson), the probability mass near the expected
            position (DSNT), or a learned score (fully-connected head); higher means more likely right.
        logits: (B, K, m, n) heatmaps before normalization (DSNT: spatial-softmax logits; Tompson: the
            regressed maps themselves), None for the fully-connected head.
        score_logits: (B, K) the fully-connected head's learned score before its sigmoid, else None.
        fine: (B, K, f, f) position-refinement heatmaps in each joint's window (Tompson), else None.
        windows: (B, K, 4) those windows (c_x, c_y, w, h), box-normalized, else None.
    """

    joints: torch.Tensor
    confidence: torch.Tensor
    logits: torch.Tensor | None = None
    score_logits: torch.Tensor | None = None
    fine: torch.Tensor | None = None
    windows: torch.Tensor | None = None

    def select(self, joint: torch.Tensor) -> HeadOutput:
        """The own-joint read-out of every field (`geometry.own_joint`), keeping a joint axis of length 1.

        Args:
            joint: (B,) long, the joint each item's crop was cut for.

        Returns:
            A HeadOutput whose fields have K = 1.
        """
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else own_joint(t, joint)[:, None]

        return replace(self, **{f: pick(getattr(self, f)) for f in
                                ("joints", "confidence", "logits", "score_logits", "fine", "windows")})


def head_output(model: nn.Module, images: torch.Tensor) -> HeadOutput:
    """`model.output(images)` for the networks with a head; the plain joints with confidence NaN (unknown) for
    networks without (the paper's AlexNet, the demo network)."""
    if hasattr(model, "output"):
        return model.output(images)
    joints = model(images)
    return HeadOutput(joints, torch.full(joints.shape[:2], float("nan"), device=joints.device))


def check_heatmap_settings(heatmap: HeatmapLossConfig) -> None:
    """Refuse heatmap-target settings no head can train with (DeepPoseError naming the config key)."""
    if heatmap.regularizer not in ("js", "variance", ""):
        raise DeepPoseError(None, f"config heatmap.regularizer: {heatmap.regularizer!r} is not js, variance or ''")
    if heatmap.sigma <= 0 or heatmap.fine_sigma <= 0 or heatmap.weight < 0:
        raise DeepPoseError(None, "config heatmap: sigma and fine_sigma must be positive, weight non-negative")


class Head(nn.Module):
    """A pose head: its network, its decoding to coordinates and confidence, its targets and its loss.

    A subclass implements:
        build(backbone, num_joints, input_size, m): the head for a backbone and an architecture config.
        features(backbone, x): the backbone features it reads, from normalized images (B, 3, S, S).
        encode, decode: its codec: the true joints as the targets its loss compares with its raw output (Eq. 1's
            coordinates themselves, or heatmaps), and its raw output decoded to joints.
        output(features): a `HeadOutput` (joints, confidence, and what the loss needs).
        forward(features): (B, K, 2) joints alone (the inference path; `output(...).joints` by default).
        check_loss(loss, head, key): refuse a loss it cannot train with (by default: all but the coordinate losses).
        loss(out, target, loss, heatmap): (..., K) per-joint training losses against (..., K, 2) true joints.
    """

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features -> (B, K, 2) box-normalized joints."""
        return self.output(features).joints

    @classmethod
    def build(cls, backbone: nn.Module, num_joints: int, input_size: int, m: ModelConfig) -> Head:
        raise NotImplementedError

    def features(self, backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def output(self, features: list[torch.Tensor]) -> HeadOutput:
        raise NotImplementedError

    @classmethod
    def check_loss(cls, loss: str, head: str, key: str) -> None:
        """Refuse a loss the head cannot train with (`head`: its name in the table, `key`: the config key)."""
        check_coordinate_loss(loss, head, key)

    @staticmethod
    def loss(out: HeadOutput, target: torch.Tensor, loss: str, heatmap: HeatmapLossConfig) -> torch.Tensor:
        raise NotImplementedError
