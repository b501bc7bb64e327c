"""MoveNet's feature pyramid and keypoint-heatmap branch as a DSNT head, so a pose network can start from all of
MoveNet's pose knowledge, not only its backbone (`models.tflite_import.import_movenet_head`).

MoveNet Lightning (a CenterNet on MobileNetV2) taps the backbone at strides 4, 8, 16 and 32 (after block_2,
block_5, block_9 and Conv_1), projects each by a 1x1 convolution, and merges them top-down: upsample (bilinear,
half-pixel centres, as TF's) + add, then a depthwise-separable 3x3 convolution with ReLU that narrows the
channels 64 -> 32 -> 24 -> 24. Its keypoint branch is one more separable convolution (24 -> 96, ReLU) and a 1x1
read-out of 17 COCO heatmaps at stride 4. Here the read-out gives K maps (LSP's 14: the 12 limb joints MoveNet
knows, plus neck and head top) that DSNT turns into coordinates, trained with DSNT's loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from deeppose.heads.dsnt import DSNTHead

if TYPE_CHECKING:
    from deeppose.config import ModelConfig

# MobileNetV2 `features` indices MoveNet reads (block_2, block_5, block_9, Conv_1), shallowest first.
TAPS = (3, 6, 10, 18)
# Channels of the merged maps at strides 16, 8 and 4 (MoveNet Lightning's).
FPN_WIDTHS = (32, 24, 24)
KEYPOINT_WIDTH = 96


class SeparableConv(nn.Sequential):
    """Keras' SeparableConv2D + ReLU: depthwise 3x3 (bias) -> pointwise 1x1 (bias) -> ReLU; (B, C, H, W) ->
    (B, C', H, W)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in), nn.Conv2d(c_in, c_out, 1),
                         nn.ReLU(inplace=True))


class MoveNetHead(DSNTHead):
    """MoveNet's pyramid and keypoint branch -> K heatmap logits at stride 4 -> spatial softmax -> DSNT.

    Args:
        in_channels: channels of the four backbone taps (`TAPS`), shallowest first.
        num_joints: K.
        dropout: channel dropout before the read-out.
    """

    def __init__(self, in_channels: list[int], num_joints: int, dropout: float = 0.0) -> None:
        nn.Module.__init__(self)
        if len(in_channels) != 4:
            raise ValueError(f"MoveNetHead reads 4 backbone levels, got {len(in_channels)}")
        self.num_joints = num_joints
        self.strides = (4, 8, 16, 32)
        c4, c8, c16, c32 = in_channels
        top = 64
        self.lateral = nn.ModuleList([nn.Conv2d(c4, FPN_WIDTHS[1], 1), nn.Conv2d(c8, FPN_WIDTHS[0], 1),
                                      nn.Conv2d(c16, top, 1), nn.Conv2d(c32, top, 1)])
        self.fuse = nn.ModuleList([SeparableConv(top, FPN_WIDTHS[0]), SeparableConv(FPN_WIDTHS[0], FPN_WIDTHS[1]),
                                   SeparableConv(FPN_WIDTHS[1], FPN_WIDTHS[2])])
        self.keypoints = SeparableConv(FPN_WIDTHS[2], KEYPOINT_WIDTH)
        self.dropout = nn.Dropout2d(dropout)
        self.logits = nn.Conv2d(KEYPOINT_WIDTH, num_joints, 1)

    @classmethod
    def build(cls, backbone: nn.Module, num_joints: int, input_size: int, m: ModelConfig) -> MoveNetHead:
        """The head on a MobileNetV2 backbone; its heatmaps are at stride 4 (`m.stride` must say so)."""
        if m.arch != "mobilenet_v2":
            raise ValueError(f"the movenet head reads MobileNetV2's layers, not {m.arch}'s")
        if m.stride != 4:
            raise ValueError(f"the movenet head's heatmaps are at stride 4, got model.stride {m.stride}")
        if m.refine:
            raise ValueError("position refinement (refine) needs the heatmap head, not 'movenet'")
        channels = [backbone.features[i].out_channels if i < len(backbone.features) - 1 else backbone.last_channel
                    for i in TAPS]
        return cls(channels, num_joints, m.dropout or 0.0)

    def features(self, backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """The four backbone taps, shallowest first: [(B, C_l, H / s, W / s)] for s = 4, 8, 16, 32."""
        return backbone.forward_layers(x, TAPS)

    def pyramid(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The four taps (shallowest first) -> (B, 24, H / 4, W / 4): top-down, upsample + add + separable conv."""
        x = self.lateral[3](features[3])
        for k, fuse in zip((2, 1, 0), self.fuse):
            up = nn.functional.interpolate(x, size=features[k].shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(up + self.lateral[k](features[k]))
        return x

    def heatmap_logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The four taps -> (B, K, H / 4, W / 4) logits Z (MoveNet's heatmap logits, before its sigmoid)."""
        return self.logits(self.dropout(self.keypoints(self.pyramid(features))))
