"""The light top-down feature pyramid that the heatmap heads (DSNT/soft-argmax and Tompson) share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from deeppose.heads.base import Head

if TYPE_CHECKING:
    from deeppose.config import ModelConfig


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, groups: int = 1) -> nn.Sequential:
    """Convolution (no bias, 'same' padding), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def pyramid_strides(stride: int, top_stride: int) -> tuple[int, ...]:
    """The backbone levels a heatmap head reads: every stride from its heatmap stride to `top_stride`."""
    strides = tuple(s for s in (4, 8, 16, 32) if stride <= s <= top_stride)
    if not strides or strides[-1] != top_stride:
        raise ValueError(f"top_stride {top_stride} must be one of 4, 8, 16, 32 and at least stride {stride}")
    return strides


class PyramidHead(Head):
    """Backbone levels -> one `width`-channel map at the heatmap stride -> K heatmap logits.

    The deepest backbone level carries the context a joint needs; the shallower ones its precise place. Each
    level is projected to `width` channels (1x1 conv), upsampled and added from the deepest down to the
    heatmap stride, smoothed by one depthwise-separable 3x3 convolution and read out as K maps.

    Args:
        in_channels: channels of the backbone features at each level, shallowest (the heatmap stride) first.
        num_joints: K.
        strides: the backbone strides of those levels (default 4, 8, ... one per level).
        width: channels of the pyramid.
        dropout: spatial (channel) dropout before the read-out (Tompson's SpatialDropout).
    """

    def __init__(self, in_channels: list[int], num_joints: int, width: int = 64, dropout: float = 0.0,
                 strides: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.strides = strides or tuple(4 * 2 ** i for i in range(len(in_channels)))
        self.width = width
        self.lateral = nn.ModuleList(conv_bn_relu(c, width) for c in in_channels)
        self.smooth = nn.Sequential(conv_bn_relu(width, width, 3, groups=width), conv_bn_relu(width, width))
        self.dropout = nn.Dropout2d(dropout)
        self.logits = nn.Conv2d(width, num_joints, 1)

    @classmethod
    def build(cls, backbone: nn.Module, num_joints: int, input_size: int, m: ModelConfig) -> PyramidHead:
        """The head on the backbone levels from `m.stride` to `m.top_stride` (`m.reduce` channels, `m.dropout`);
        a backbone that can be cut short (`truncate`) loses the layers deeper than `m.top_stride`."""
        if m.refine:
            raise ValueError(f"position refinement (refine) needs the heatmap head, not {m.head!r}")
        strides = cls.levels(backbone, m)
        return cls([backbone.feature_channels(s) for s in strides], num_joints, m.reduce, m.dropout, strides)

    @staticmethod
    def levels(backbone: nn.Module, m: ModelConfig) -> tuple[int, ...]:
        """The strides a pyramid head of `m` reads (`pyramid_strides`); a backbone that can be cut short
        (`truncate`) loses its layers deeper than `m.top_stride`."""
        strides = pyramid_strides(m.stride, m.top_stride)
        if m.top_stride < 32 and hasattr(backbone, "truncate"):
            backbone.truncate(m.top_stride)
        return strides

    def features(self, backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone levels the pyramid reads, shallowest first: [(B, C_l, H_l, W_l)]."""
        return backbone.forward_pyramid(x, self.strides)

    def pyramid(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features [(B, C_l, H_l, W_l)], shallowest first -> (B, width, H_0, W_0)."""
        x = self.lateral[-1](features[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(features[:-1])):
            x = lateral(f) + nn.functional.interpolate(x, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.smooth(x)

    def heatmap_logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Backbone features [(B, C_l, H_l, W_l)], shallowest first -> (B, K, H_0, W_0) logits Z."""
        return self.logits(self.dropout(self.pyramid(features)))
