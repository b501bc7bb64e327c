"""The person detector: a whole photo -> where every person's centre is, and each one's coarse pose.

A CenterNet (Zhou et al. 2019, "Objects as Points") on MoveNet's backbone and feature pyramid
(`heads.movenet.MoveNetHead.pyramid`), as MoveNet itself is: at every cell of the stride-4 grid,

- a person-centre logit (the centre of the person's joints' extent, `serve.localize.person_box`'s centre);
- the K joints' offsets from that cell, in cells (x, y per joint): the coarse pose of the person centred there.

The box each person gets follows from that pose by the box rule (`serve.localize.person_box`), so that the pose
network sees people framed as it was trained. Reading the maps into people (peaks, their poses, non-maximum
suppression, calibrated scores) is `serve.detect`'s job, the same for the PyTorch and ONNX backends.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deeppose.heads.movenet import FPN_WIDTHS, KEYPOINT_WIDTH, MoveNetHead, SeparableConv
from deeppose.models.regressor import BackboneRegressor

STRIDE = 4
# CenterNet's start for a heatmap read-out: every cell a centre with probability 0.1
CENTRE_PRIOR = 0.1


class PersonDetector(nn.Module):
    """(B, 3, S, S) uint8 squared photos -> ((B, 1, S/4, S/4) person-centre logits, (B, 2K, S/4, S/4) joint
    offsets from each cell in cells, x and y of joint k in channels 2k and 2k + 1).

    Args:
        regressor: a `BackboneRegressor` with a "movenet" head; only its backbone and pyramid are used (its
            keypoint read-out stays as it was, unused).
    """

    def __init__(self, regressor: BackboneRegressor) -> None:
        super().__init__()
        if not isinstance(regressor.head, MoveNetHead):
            raise ValueError(f"the detector reads MoveNet's pyramid (head 'movenet'), got "
                             f"{type(regressor.head).__name__}")
        self.regressor = regressor
        self.input_size = regressor.input_size
        self.num_joints = regressor.num_joints
        self.stride = STRIDE
        width = FPN_WIDTHS[-1]
        self.centre = nn.Sequential(SeparableConv(width, KEYPOINT_WIDTH), nn.Conv2d(KEYPOINT_WIDTH, 1, 1))
        self.offsets = nn.Sequential(SeparableConv(width, KEYPOINT_WIDTH),
                                     nn.Conv2d(KEYPOINT_WIDTH, 2 * self.num_joints, 1))
        nn.init.constant_(self.centre[1].bias, math.log(CENTRE_PRIOR / (1 - CENTRE_PRIOR)))

    def train(self, mode: bool = True) -> PersonDetector:
        super().train(mode)
        self.regressor.train(mode)  # keeps a frozen backbone's BatchNorm in eval mode
        return self

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) uint8 -> ((B, 1, S/4, S/4) centre logits, (B, 2K, S/4, S/4) offsets in cells)."""
        pyramid = self.regressor.head.pyramid(self.regressor.features(images))
        return self.centre(pyramid), self.offsets(pyramid)
