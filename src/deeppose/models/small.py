"""A small CNN regressor: the minimal DeepPose-style stage-1 network used by `deeppose demo` and tests."""

from __future__ import annotations

import torch
from torch import nn

from deeppose.models.normalize import InputNormalize


def _conv(c_in: int, c_out: int, stride: int = 1, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
                               nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallRegressor(nn.Module):
    """psi(x; theta) in miniature: five conv layers (total stride 16), then two fully-connected layers to 2K.

    Like DeepPose's network it regresses the box-normalized joint coordinates (Eq. 1 frame of the input
    crop) from fully-connected layers that see the whole spatial map.

    Args:
        num_joints: K.
        input_size: side of the square input crop (a multiple of 16).
        width: channels of the first layer (doubled up to 8 x width).
        dropout: before each fully-connected layer.
    """

    def __init__(self, num_joints: int, input_size: int = 64, width: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16, got {input_size}")
        self.num_joints = num_joints
        self.input_size = input_size
        self.normalize = InputNormalize()
        w = width
        self.features = nn.Sequential(_conv(3, w, stride=2), _conv(w, 2 * w, pool=True), _conv(2 * w, 4 * w, pool=True),
                                      _conv(4 * w, 8 * w, pool=True), _conv(8 * w, 8 * w))
        cells = (input_size // 16) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * w * cells, 256),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(256, 2 * num_joints))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 RGB crops -> (B, K, 2) normalized joint coordinates."""
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"images: expected (B, 3, {self.input_size}, {self.input_size}), "
                             f"got {tuple(images.shape)}")
        return self.head(self.features(self.normalize(images))).view(-1, self.num_joints, 2)
