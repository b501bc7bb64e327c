"""Stage-1 regressors: backbone features -> a regression head -> K box-normalized (x, y) coordinates."""

from __future__ import annotations

import torch
from torch import nn

from deeppose.heads.base import HeadOutput
from deeppose.heads.dsnt import SoftArgmaxHead
from deeppose.heads.heatmap import HeatmapHead
from deeppose.models.normalize import InputNormalize

# "soft_argmax" and "dsnt" are one network (the DSNT transform); they differ in their training loss only.
HEADS = ("fc", "soft_argmax", "dsnt", "heatmap")
PYRAMID_HEADS = ("soft_argmax", "dsnt", "heatmap")


class FCRegressionHead(nn.Module):
    """DeepPose's regression layer on a feature map.

    A 1x1 convolution reduces the channels (so the fully-connected layer sees the whole spatial map at a
    modest size), then dropout and a linear layer (optionally through one hidden layer) give 2K numbers.

    Args:
        in_channels, map_size: the feature map (C, S, S) it reads.
        num_joints: K.
        reduce: channels after the 1x1 convolution.
        hidden: width of the hidden fully-connected layer (0: none).
        dropout: before each linear layer.
    """

    def __init__(self, in_channels: int, map_size: int, num_joints: int, reduce: int = 128, hidden: int = 0,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.num_joints = num_joints
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

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, K, 2)."""
        return self.fc(self.reduce(features)).view(-1, self.num_joints, 2)


class JointScore(nn.Module):
    """A learned per-joint confidence for the fully-connected head: pooled features -> K logits.

    It reads the features without a gradient into them, so learning the score never changes the joints; it is
    trained to tell whether each joint lands within `objectives.SCORE_RADIUS` of the truth.
    """

    def __init__(self, in_channels: int, num_joints: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, num_joints)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, K) score logits."""
        return self.linear(features.detach().mean(dim=(-2, -1)))


class BackboneRegressor(nn.Module):
    """psi(x; theta) = a head on backbone features: (B, 3, S, S) uint8 crops -> (B, K, 2) normalized joints.

    Args:
        backbone: a module with `forward_features(x, stride)`, `forward_pyramid(x, strides)` and
            `feature_channels(stride)`.
        input_size: side of the square input crop (a multiple of `stride`).
        stride: output stride of the features the FC head reads, or of the soft-argmax heatmaps (4, 8, 16 or 32).
        reduce: channels of the FC head's 1x1 reduction, or of the soft-argmax head's pyramid.
        head: "fc" (DeepPose: fully-connected layers), "soft_argmax" or "dsnt" (heatmaps -> spatial softmax ->
            DSNT), or "heatmap" (Tompson: regressed heatmaps, argmax).
        top_stride: the deepest level the heatmap pyramid reads (32: the whole backbone; 8 or 16 cut the
            backbone short, for the small crops of cascade stages).
        score: give the fully-connected head a learned per-joint confidence (`JointScore`).
        refine: Tompson's position refinement on the heatmap head (it also crops the stride-4 features).
        freeze_bn: keep the backbone's BatchNorm layers in eval mode while training (their running statistics
            fixed, their affine parameters still learned), so an ImageNet backbone starts as exactly the
            pretrained function; the head's BatchNorm still trains normally.
    """

    def __init__(self, backbone: nn.Module, num_joints: int, input_size: int, stride: int = 32, reduce: int = 128,
                 hidden: int = 0, dropout: float = 0.2, freeze_bn: bool = False, head: str = "fc",
                 top_stride: int = 32, score: bool = False, refine: bool = False) -> None:
        super().__init__()
        self.freeze_bn = freeze_bn
        if input_size % stride:
            raise ValueError(f"input_size {input_size} must be a multiple of the feature stride {stride}")
        self.num_joints = num_joints
        self.input_size = input_size
        self.stride = stride
        self.normalize = InputNormalize()
        self.backbone = backbone
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        self.head_kind = head
        # A heatmap head reads every backbone level from its heatmap stride to top_stride.
        self.strides = tuple(s for s in (4, 8, 16, 32) if stride <= s <= top_stride)
        if head in PYRAMID_HEADS and (not self.strides or self.strides[-1] != top_stride):
            raise ValueError(f"top_stride {top_stride} must be one of 4, 8, 16, 32 and at least stride {stride}")
        if refine and head != "heatmap":
            raise ValueError(f"position refinement (refine) needs the heatmap head, not {head!r}")
        # the position refinement also crops the stride-4 level when the heatmaps are coarser
        self.fine_stride = 4 if refine and stride > 4 else 0
        self.head: nn.Module
        self.score = None
        if head == "fc":
            self.head = FCRegressionHead(backbone.feature_channels(stride), input_size // stride, num_joints,
                                         reduce, hidden, dropout)
            self.score = JointScore(backbone.feature_channels(stride), num_joints) if score else None
        elif head == "heatmap":
            fine = backbone.feature_channels(4) if self.fine_stride else 0
            self.head = HeatmapHead([backbone.feature_channels(s) for s in self.strides], num_joints, reduce,
                                    dropout, refine, fine)
        else:
            self.head = SoftArgmaxHead([backbone.feature_channels(s) for s in self.strides], num_joints, reduce,
                                       dropout)

    def train(self, mode: bool = True) -> BackboneRegressor:
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def _inputs(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"images: expected (B, 3, {self.input_size}, {self.input_size}), got "
                             f"{tuple(images.shape)}")
        return self.normalize(images)

    def output(self, images: torch.Tensor) -> HeadOutput:
        """(B, 3, S, S) uint8 crops -> joints, per-joint confidence and what the head's loss needs.

        The fully-connected head without a learned score reports confidence NaN (unknown).
        """
        x = self._inputs(images)
        if self.head_kind == "fc":
            features = self.backbone.forward_features(x, self.stride)
            joints = self.head(features)
            if self.score is None:
                return HeadOutput(joints, torch.full(joints.shape[:2], float("nan"), device=joints.device))
            logits = self.score(features)
            return HeadOutput(joints, torch.sigmoid(logits), score_logits=logits)
        if self.fine_stride:
            fine, *levels = self.backbone.forward_pyramid(x, (self.fine_stride, *self.strides))
            return self.head.output(levels, fine)
        return self.head.output(self.backbone.forward_pyramid(x, self.strides))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 crops -> (B, K, 2) box-normalized joints."""
        if self.head_kind in ("soft_argmax", "dsnt"):
            return self.head(self.backbone.forward_pyramid(self._inputs(images), self.strides))
        if self.head_kind == "fc":
            return self.head(self.backbone.forward_features(self._inputs(images), self.stride))
        return self.output(images).joints
