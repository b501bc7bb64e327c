"""Stage-1 regressors: backbone features -> a pose head (`deeppose.heads`) -> K box-normalized (x, y) coordinates."""

from __future__ import annotations

import torch
from torch import nn

from deeppose.heads import Head, HeadOutput
from deeppose.models.normalize import InputNormalize


class BackboneRegressor(nn.Module):
    """psi(x; theta) = a head on backbone features: (B, 3, S, S) uint8 crops -> (B, K, 2) normalized joints.

    Args:
        backbone: a module with `forward_features(x, stride)`, `forward_pyramid(x, strides)` and
            `feature_channels(stride)`.
        head: the pose head (`deeppose.heads.HEADS`); it chooses the backbone features it reads.
        input_size: side of the square input crop (a multiple of the head's feature stride).
        freeze_bn: keep the backbone's BatchNorm layers in eval mode while training (their running statistics
            fixed, their affine parameters still learned), so an ImageNet backbone starts as exactly the
            pretrained function; the head's BatchNorm still trains normally.
    """

    def __init__(self, backbone: nn.Module, head: Head, input_size: int, freeze_bn: bool = False) -> None:
        super().__init__()
        self.freeze_bn = freeze_bn
        self.num_joints = head.num_joints
        self.input_size = input_size
        self.normalize = InputNormalize()
        self.backbone = backbone
        self.head = head

    def train(self, mode: bool = True) -> BackboneRegressor:
        super().train(mode)
        if mode and self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) uint8 crops -> the backbone features the head reads (shallowest first)."""
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"images: expected (B, 3, {self.input_size}, {self.input_size}), got "
                             f"{tuple(images.shape)}")
        return self.head.features(self.backbone, self.normalize(images))

    def output(self, images: torch.Tensor) -> HeadOutput:
        """(B, 3, S, S) uint8 crops -> joints, per-joint confidence and what the head's loss needs."""
        return self.head.output(self.features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 crops -> (B, K, 2) box-normalized joints."""
        return self.head(self.features(images))
