"""The person localizer: a whole photo -> a coarse pose (the person's box follows from it) and a presence logit.

It is a stage-1 regressor (DSNT head) trained on whole photos with zoom-out views, plus one linear read-out
of its deepest features (average- and max-pooled) that says whether anybody is in view. The pose network
proper then works on the box it finds (`deeppose.serve.localize`).
"""

from __future__ import annotations

import torch
from torch import nn

from deeppose.heads.base import HeadOutput
from deeppose.heads.dsnt import SoftArgmaxHead
from deeppose.models.regressor import BackboneRegressor


class PersonLocalizer(nn.Module):
    """(B, 3, S, S) uint8 whole images (squared) -> coarse joints, their confidence and a presence logit.

    Args:
        regressor: a `BackboneRegressor` with a heatmap-pyramid head ("dsnt" or "soft_argmax").
    """

    def __init__(self, regressor: BackboneRegressor) -> None:
        super().__init__()
        if not isinstance(regressor.head, SoftArgmaxHead):
            raise ValueError(f"the localizer needs a dsnt or soft_argmax head, got {type(regressor.head).__name__}")
        self.regressor = regressor
        self.input_size = regressor.input_size
        channels = regressor.backbone.feature_channels(regressor.head.strides[-1])
        self.presence = nn.Linear(2 * channels, 1)
        nn.init.zeros_(self.presence.bias)
        nn.init.normal_(self.presence.weight, std=1e-3)

    def output_and_pooled(self, images: torch.Tensor) -> tuple[HeadOutput, torch.Tensor]:
        """(B, 3, S, S) uint8 -> (the head's output, (B, 2C) the deepest features average- and max-pooled: what
        the presence layer reads)."""
        features = self.regressor.features(images)
        top = features[-1]
        out = self.regressor.head.output(features)  # first: the order autograd accumulates the gradients in
        return out, torch.cat([top.mean(dim=(-2, -1)), top.amax(dim=(-2, -1))], dim=1).float()

    def output(self, images: torch.Tensor) -> tuple[HeadOutput, torch.Tensor]:
        """(B, 3, S, S) uint8 -> (the head's output: joints (B, K, 2) box-normalized, ...; (B,) presence logits)."""
        out, pooled = self.output_and_pooled(images)
        return out, self.presence(pooled)[:, 0]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) uint8 -> ((B, K, 2) box-normalized joints, (B,) presence logits)."""
        out, logit = self.output(images)
        return out.joints, logit


class PosePipeline(nn.Module):
    """The shipped default: a `PersonLocalizer` in front of a pose model (stage 1 or a cascade), held together so
    that one checkpoint carries both (`models.checkpoint.bundle_checkpoint`); `serve.predictor.Predictor` runs them."""

    def __init__(self, localizer: PersonLocalizer, pose: nn.Module) -> None:
        super().__init__()
        self.localizer = localizer
        self.pose = pose
