"""The first stage of the serving pipeline: who is in the photo.

A finder sees each photo (its squared whole image, or a region of it) and returns the candidates, `People` best
first, each with a calibrated score, a coarse pose and the box the pose network will crop:

- `DetectorFinder`: the person detector (`models.detector`), everyone in view (`serve.detect.read_people`);
- `LocalizerFinder`: the one-person localizer (`models.localizer`), one candidate per photo (the baseline the
  detector replaced).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from deeppose.geometry import square_box, whole_image_box
from deeppose.models.detector import STRIDE
from deeppose.models.meta import BoxRule, ModelMeta
from deeppose.serve.backend import Networks
from deeppose.serve.batch import crops_to_image
from deeppose.serve.detect import SCORE_FLOOR, People, read_people
from deeppose.serve.localize import BOX_SCALE, person_box, presence_probability
from deeppose.serve.pose import crop_boxes


def whole_photos(images: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 4) the squared whole image of each photo (c_x, c_y, s, s): what a finder sees by default."""
    return np.stack([square_box(whole_image_box(im.shape[1], im.shape[0])) for im in images]) if len(images) \
        else np.zeros((0, 4))


class Finder(Protocol):
    meta: ModelMeta
    rule: BoxRule

    def __call__(self, images: Sequence[np.ndarray], regions: np.ndarray | None = None, batch_size: int = 32
                 ) -> list[People]: ...

    def logits(self, images: Sequence[np.ndarray], regions: np.ndarray, batch_size: int = 32) -> np.ndarray: ...


class DetectorFinder:
    """Everyone in view, by the person detector.

    Args:
        networks: runs the detector (`networks.detect`).
        meta: the detector's checkpoint meta (input size; box rule and score calibration in `box_rule`).
        floor: candidates scored below it are dropped.
    """

    def __init__(self, networks: Networks, meta: ModelMeta, floor: float = SCORE_FLOOR) -> None:
        self.networks = networks
        self.meta = meta
        self.rule = meta.box_rule or BoxRule(BOX_SCALE)
        self.floor = floor

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray], regions: np.ndarray | None = None, batch_size: int = 32
                 ) -> list[People]:
        """The candidates in each photo (seen through `regions`, (N, 4) boxes; default: the whole photos)."""
        regions = whole_photos(images) if regions is None else regions
        out: list[People] = []
        for lo in range(0, len(images), batch_size):
            x, affine = crop_boxes(images[lo:lo + batch_size], regions[lo:lo + batch_size], self.meta.input_size)
            logits, offsets = self.networks.detect(x)
            out += [read_people(z[0], d, a, self.rule.a, self.rule.b, STRIDE, self.rule.box_scale, self.floor)
                    for z, d, a in zip(logits.float().numpy(), offsets.float().numpy(), affine.numpy())]
        return out

    @torch.inference_mode()
    def logits(self, images: Sequence[np.ndarray], regions: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N,) the logit of the strongest person centre in each photo's region (a caller's box)."""
        out = []
        for lo in range(0, len(images), batch_size):
            x, _ = crop_boxes(images[lo:lo + batch_size], regions[lo:lo + batch_size], self.meta.input_size)
            logits = self.networks.detect(x)[0].float().numpy().astype(np.float64)
            out.append(logits.reshape(len(x), -1).max(axis=1))
        return np.concatenate(out) if out else np.zeros(0)


class LocalizerFinder:
    """One candidate per photo, by the one-person localizer: its coarse pose, its box and presence score."""

    def __init__(self, networks: Networks, meta: ModelMeta) -> None:
        self.networks = networks
        self.meta = meta
        self.rule = meta.box_rule or BoxRule(BOX_SCALE)

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray], regions: np.ndarray | None = None, batch_size: int = 32
                 ) -> list[People]:
        """One candidate in each photo (seen through `regions`; default: the whole photos)."""
        regions = whole_photos(images) if regions is None else regions
        size = self.meta.input_size
        out: list[People] = []
        for lo in range(0, len(images), batch_size):
            x, affine = crop_boxes(images[lo:lo + batch_size], regions[lo:lo + batch_size], size)
            u, logit = self.networks.localize(x)
            joints = crops_to_image(u, affine, size).numpy()
            logit = logit.float().numpy().astype(np.float64)
            scores = presence_probability(logit, self.rule.a, self.rule.b)
            out += [People(person_box(j[None], self.rule.box_scale), s[None], z[None], j[None])
                    for j, s, z in zip(joints, scores, logit)]
        return out

    def logits(self, images: Sequence[np.ndarray], regions: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """(N,) the presence logit of each photo's region (a caller's box)."""
        return np.array([float(p.logits[0]) for p in self(images, regions, batch_size)])
