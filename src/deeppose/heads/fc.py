"""DeepPose's head (Toshev & Szegedy 2014): fully-connected layers regress the 2K numbers of Eq. 1 directly.

Codec: the target is the box-normalized joints themselves (Eq. 1) and the output is read as is. Loss: a coordinate
loss (Eq. 4: L2; or L1, smooth-L1, Euclidean), plus, with a learned score, its binary cross-entropy: the score
learns whether each joint lands within SCORE_RADIUS of the truth, and is the head's confidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from deeppose.heads.base import Head, HeadOutput
from deeppose.heads.losses import LOSSES

if TYPE_CHECKING:
    from deeppose.config import HeatmapLossConfig, ModelConfig

# Distance (box units) within which the score counts a joint as right; about PCK@0.2 of LSP's median torso (0.27
# of the box).
SCORE_RADIUS = 0.05


class JointScore(nn.Module):
    """A learned per-joint confidence: pooled features -> K logits.

    It reads the features without a gradient into them, so learning the score never changes the joints.
    """

    def __init__(self, in_channels: int, num_joints: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, num_joints)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, K) score logits."""
        return self.linear(features.detach().mean(dim=(-2, -1)))


def score_bce(score_logits: torch.Tensor, joints: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The learned score's binary cross-entropy per joint, its label whether the joint is within SCORE_RADIUS.

    Args:
        score_logits: (..., K); joints, target: (..., K, 2) box-normalized (joints carry no gradient here).
    """
    label = ((joints.detach() - target).norm(dim=-1) < SCORE_RADIUS).to(score_logits.dtype)
    return nn.functional.binary_cross_entropy_with_logits(score_logits, label, reduction="none")


class FCHead(Head):
    """DeepPose's regression layer on one backbone feature map.

    A 1x1 convolution reduces the channels (so the fully-connected layer sees the whole spatial map at a modest
    size), then dropout and a linear layer (optionally through one hidden layer) give 2K numbers.

    Args:
        in_channels, map_size: the feature map (C, S, S) it reads, at backbone stride `stride`.
        num_joints: K.
        reduce: channels after the 1x1 convolution.
        hidden: width of the hidden fully-connected layer (0: none).
        dropout: before each linear layer.
        score: learn a per-joint confidence (`JointScore`); without it the confidence is NaN (unknown).
    """

    def __init__(self, in_channels: int, map_size: int, num_joints: int, stride: int = 32, reduce: int = 128,
                 hidden: int = 0, dropout: float = 0.2, score: bool = False) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.stride = stride
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, reduce, 1, bias=False), nn.BatchNorm2d(reduce),
                                    nn.ReLU(inplace=True))
        flat = reduce * map_size * map_size
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            flat = hidden
        layers.append(nn.Linear(flat, 2 * num_joints))
        self.fc = nn.Sequential(*layers)
        nn.init.zeros_(self.fc[-1].bias)
        nn.init.normal_(self.fc[-1].weight, std=1e-3)  # start near the box centre, not at random offsets
        self.score = JointScore(in_channels, num_joints) if score else None

    @classmethod
    def build(cls, backbone: nn.Module, num_joints: int, input_size: int, m: ModelConfig) -> FCHead:
        """The head on the backbone level at `m.stride` (`m.reduce`, `m.hidden`, `m.dropout`, `m.score`)."""
        if m.refine:
            raise ValueError("position refinement (refine) needs the heatmap head, not 'fc'")
        return cls(backbone.feature_channels(m.stride), input_size // m.stride, num_joints, m.stride, m.reduce,
                   m.hidden, m.dropout, m.score)

    def features(self, backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """The one backbone level the head reads: [(B, C, S, S)]."""
        return [backbone.forward_features(x, self.stride)]

    @staticmethod
    def encode(target: torch.Tensor) -> torch.Tensor:
        """The codec's targets: Eq. 1's coordinates themselves, (..., K, 2); the layers regress them directly."""
        return target

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """The codec's read-out: (B, 2K) regression output -> (B, K, 2) joints."""
        return raw.view(-1, self.num_joints, 2)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """[(B, C, S, S)] -> (B, K, 2)."""
        return self.decode(self.fc(self.reduce(features[0])))

    def output(self, features: list[torch.Tensor]) -> HeadOutput:
        """[(B, C, S, S)] -> joints and the learned score (confidence NaN without one)."""
        joints = self(features)
        if self.score is None:
            return HeadOutput(joints, torch.full(joints.shape[:2], float("nan"), device=joints.device))
        logits = self.score(features[0])
        return HeadOutput(joints, torch.sigmoid(logits), score_logits=logits)

    @staticmethod
    def loss(out: HeadOutput, target: torch.Tensor, loss: str, heatmap: HeatmapLossConfig) -> torch.Tensor:
        """(..., K): the coordinate loss (Eq. 4 with `loss`) plus the score's cross-entropy when there is one."""
        value = LOSSES[loss](out.joints, FCHead.encode(target))
        if out.score_logits is not None:
            value = value + score_bce(out.score_logits, out.joints, target)
        return value
