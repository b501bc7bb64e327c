"""Pose heads: each is one module and one class (network, codec, confidence, loss), listed in `HEADS`.

    fc           DeepPose: fully-connected regression of Eq. 1's coordinates         (`heads.fc`)
    soft_argmax  the DSNT transform trained with a coordinate loss alone              (`heads.dsnt`)
    dsnt         DSNT: the same network, plus its heatmap regularizer in the loss     (`heads.dsnt`)
    heatmap      Tompson et al.: regressed Gaussian heatmaps, argmax, refinement      (`heads.heatmap`)
    movenet      DSNT on MoveNet's own pyramid and keypoint branch (importable)       (`heads.movenet`)

Adding a head: a module with a `Head` subclass, and a line in `HEADS`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch

from deeppose.heads.base import Head, HeadOutput, check_heatmap_settings, head_output
from deeppose.heads.dsnt import DSNTHead, SoftArgmaxHead
from deeppose.heads.fc import FCHead
from deeppose.heads.heatmap import HeatmapHead
from deeppose.heads.movenet import MoveNetHead

if TYPE_CHECKING:
    from deeppose.config import HeatmapLossConfig

HEADS: dict[str, type[Head]] = {
    "fc": FCHead,
    "soft_argmax": SoftArgmaxHead,
    "dsnt": DSNTHead,
    "heatmap": HeatmapHead,
    "movenet": MoveNetHead,
}

__all__ = ["HEADS", "Head", "HeadOutput", "head_class", "head_output", "objective"]


def head_class(name: str) -> type[Head]:
    """The head class of a config's `model.head`; ValueError naming the known ones."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(HEADS)}")
    return HEADS[name]


def objective(head: str, loss: str, heatmap: HeatmapLossConfig, key: str = "loss"
              ) -> Callable[[HeadOutput, torch.Tensor], torch.Tensor]:
    """The per-joint training loss of a head: (HeadOutput, (..., K, 2) true joints) -> (..., K), after checking
    the settings (DeepPoseError naming the config key `key` of the loss)."""
    cls = head_class(head)
    cls.check_loss(loss, head, key)
    check_heatmap_settings(heatmap)
    return partial(cls.loss, loss=loss, heatmap=heatmap)
