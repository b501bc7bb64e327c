"""The pose stage of the serving pipeline: boxes in photos -> each box's crop -> the pose network (a stage-1
regressor or a cascade; optionally the flip test) -> joints back in photo pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deeppose.geometry import augmentation_matrix, square_box, warp_image
from deeppose.serve.backend import Networks
from deeppose.serve.batch import crops_to_image
from deeppose.skeleton import Skeleton


def mirror_joints(u: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """Joints predicted on a mirrored crop, mapped back: left/right swapped and x negated.

    Mirroring a crop maps normalized x to -x exactly (the crop convention is symmetric about its centre).

    Args:
        u: (..., K, 2) normalized coordinates.
    """
    u = u[..., skeleton.flip_permutation(), :]
    return torch.stack([-u[..., 0], u[..., 1]], dim=-1)


def crop_boxes(images: Sequence[np.ndarray], boxes: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, size, size) uint8 crops of the boxes (B, 4) (c_x, c_y, w, h), squared, one per image, and their
    (B, 2, 3) affines (photo pixels -> crop pixels)."""
    crops, affines = [], []
    for image, box in zip(images, boxes):
        affine = augmentation_matrix(square_box(np.asarray(box, np.float64)), (size, size))
        crops.append(warp_image(image, affine, (size, size)).transpose(2, 0, 1))
        affines.append(affine)
    if not crops:
        return torch.zeros((0, 3, size, size), dtype=torch.uint8), torch.zeros((0, 2, 3), dtype=torch.float64)
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops))), torch.from_numpy(np.stack(affines))


class PoseStage:
    """The pose network on person boxes.

    Args:
        networks: what runs the pose network (`serve.backend`).
        skeleton: its joints.
        input_size: its crop side; source_size: a cascade's source side (None for a stage-1 model).
        flip: the flip test (the mean of the crop's and its mirror's prediction).
    """

    def __init__(self, networks: Networks, skeleton: Skeleton, input_size: int, source_size: int | None = None,
                 flip: bool = False) -> None:
        self.networks = networks
        self.skeleton = skeleton
        self.input_size = input_size
        self.source_size = source_size
        self.flip = flip

    def normalized(self, crops: torch.Tensor, sources: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) uint8 crops [and (B, 3, R, R) sources for a cascade] -> ((B, n, K, 2) normalized joints of
        stages 1..n, (B, K) confidence in [0, 1], NaN where the model has none); with the flip test, the mean of
        both passes'."""
        u, confidence = self.networks.pose(crops, sources)
        if self.flip:
            u_flip, c_flip = self.networks.pose(crops.flip(-1), None if sources is None else sources.flip(-1))
            u = (u + mirror_joints(u_flip, self.skeleton)) / 2
            confidence = (confidence + c_flip[:, self.skeleton.flip_permutation()]) / 2
        return u, confidence

    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray], boxes: np.ndarray, batch_size: int = 32
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The pose network in each image's box (B images, (B, 4) boxes; an image may come several times, once
        per person): ((B, n, K, 2) photo pixels of stages 1..n, (B, K) confidence)."""
        joints, confidences = [], []
        for lo in range(0, len(images), batch_size):
            ims, bxs = images[lo:lo + batch_size], boxes[lo:lo + batch_size]
            x, affine = crop_boxes(ims, bxs, self.input_size)
            sources = crop_boxes(ims, bxs, self.source_size)[0] if self.source_size else None
            u, confidence = self.normalized(x, sources)
            pixels = crops_to_image(u.reshape(len(ims), -1, 2), affine, self.input_size).reshape(u.shape)
            joints.append(pixels.numpy())
            confidences.append(confidence.float().numpy())
        return np.concatenate(joints), np.concatenate(confidences).astype(np.float64)
