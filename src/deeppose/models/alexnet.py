"""The DeepPose network psi (Toshev & Szegedy 2014, Sec. 3), an AlexNet-like regressor.

Input 220 x 220 x 3: C(55x55x96, 11x11/4) - LRN - P - C(27x27x256, 5x5) - LRN - P - C(13x13x384, 3x3) -
C(13x13x384, 3x3) - C(13x13x256, 3x3) - P - F(4096) - F(4096) - linear 2k; ReLU everywhere, dropout 0.6
on the F layers. Keys follow torchvision's AlexNet naming (`features.*`, `classifier.*`).

The paper states "about 40M" parameters, but its listed layer sizes give 58.4M (with k = 14): the first
F(4096) layer alone, on the 6 x 6 x 256 pooled map, holds 37.7M. We build the layers as listed.
"""

from __future__ import annotations

import torch
from torch import nn

from deeppose.models.normalize import InputNormalize

DEEPPOSE_INPUT_SIZE = 220


class DeepPoseAlexNet(nn.Module):
    """psi(x; theta): (B, 3, 220, 220) uint8 crops -> (B, K, 2) box-normalized joints (DeepPose Eq. 2).

    Args:
        num_joints: k.
        dropout: on the two F(4096) layers (paper: 0.6).
    """

    def __init__(self, num_joints: int = 14, dropout: float = 0.6) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.input_size = DEEPPOSE_INPUT_SIZE
        self.normalize = InputNormalize()
        # Padding 4 on the 11x11/4 layer gives the paper's 55 x 55 map from a 220 x 220 input.
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4, padding=4), nn.ReLU(inplace=True), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 2 * num_joints),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"images: expected (B, 3, 220, 220), got {tuple(images.shape)}")
        x = self.features(self.normalize(images))
        return self.classifier(torch.flatten(x, 1)).view(-1, self.num_joints, 2)
