"""The DeepPose cascade (Toshev & Szegedy 2014, Eq. 6-7): stage 1, then refinement stages on joint sub-images.

Frame: every stage works in the box-normalized coordinates of the person box b^0 (Eq. 1), the frame of the
stage-1 crop. The refinement stages read their sub-images from a `source`: the same box sampled at a higher
resolution (`source_size` pixels), so a sub-image carries the image's own detail rather than the stage-1
input's. All K joint boxes of a batch are cut in one batched `grid_sample` call.
"""

from __future__ import annotations

import torch
from torch import nn

from deeppose.geometry import (
    crop_matrix,
    diam,
    joint_boxes,
    normalize,
    normalized_to_crop_pixel,
    own_joint,
    warp_images_torch,
)
from deeppose.heads.base import head_output
from deeppose.skeleton import Skeleton


def refinement_target(y: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """DeepPose Eq. (6), the regression target of stage s: N(y_i; b_i), the true joint inside its joint box.

    Args:
        y: (..., K, 2) true joints; boxes: (..., K, 4) joint boxes (c_x, c_y, w, h), same units.

    Returns:
        (..., K, 2) displacement of the true joint from the box centre, in units of the box side.
    """
    return normalize(y, boxes)


def refine(y_prev: torch.Tensor, boxes: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """DeepPose Eq. (6): y_i^s = y_i^(s-1) + N^{-1}(psi_i(N(x; b_i); theta_s); b_i), the displacement part.

    The box b_i is centred on y_i^(s-1), so the update adds psi scaled by the box side.

    Args:
        y_prev: (..., K, 2) stage s-1 joints; boxes: (..., K, 4) their joint boxes b_i^(s-1).
        psi: (..., K, 2) the stage's output for each joint, box-normalized.

    Returns:
        (..., K, 2) stage-s joints, in the units of y_prev.
    """
    return y_prev + psi * boxes[..., 2:4]


def box_crops(sources: torch.Tensor, boxes: torch.Tensor, crop_size: int) -> torch.Tensor:
    """The sub-images N(x; b_i) of every joint box, cut from the sources in one batched warp.

    Args:
        sources: (B, 3, R, R) the person boxes sampled at R pixels (uint8 0..255 or float 0..1).
        boxes: (B, M, 4) boxes in box-normalized coordinates of the person box (M boxes per image).
        crop_size: side c of each sub-image.

    Returns:
        (B * M, 3, c, c) float crops (0..1), image-major: crop n belongs to image n // M.
    """
    b, m = boxes.shape[:2]
    r = sources.shape[-1]
    centre = normalized_to_crop_pixel(boxes[..., 0:2], (r, r))
    px = torch.cat([centre, boxes[..., 2:4] * r], dim=-1).reshape(b * m, 4)
    src = sources.float() / 255.0 if sources.dtype == torch.uint8 else sources
    return warp_images_torch(src, crop_matrix(px, (crop_size, crop_size)), (crop_size, crop_size))


def refinement_stage(refiner: nn.Module, sources: torch.Tensor, y_prev: torch.Tensor, skeleton: Skeleton,
                     sigma: float, crop_size: int, joints: torch.Tensor | None = None) -> torch.Tensor:
    """One refinement stage s (Eq. 6 and 7): joint boxes b_i^(s-1) around y^(s-1), their crops, psi, update.

    Args:
        refiner: maps (N, 3, c, c) crops to (N, K, 2); the crop of joint i reads output i.
        sources: (B, 3, R, R); y_prev: (B, K, 2) box-normalized joints of stage s-1.
        joints: (J,) long, the joints this stage refines (default all K); the others keep y^(s-1).

    Returns:
        (B, K, 2) stage-s joints.
    """
    b, k = y_prev.shape[:2]
    labelled = torch.ones(b, k, dtype=torch.bool, device=y_prev.device)
    boxes = joint_boxes(y_prev, diam(y_prev, labelled, skeleton), sigma)
    if joints is None:
        joints = torch.arange(k, device=y_prev.device)
    boxes = boxes[:, joints]
    crops = box_crops(sources, boxes, crop_size).contiguous(memory_format=torch.channels_last)
    psi = own_joint(refiner(crops), joints.repeat(b)).view(b, len(joints), 2)
    out = y_prev.clone()
    out[:, joints] = refine(y_prev[:, joints], boxes, psi)
    return out


class Cascade(nn.Module):
    """Stage 1 plus S-1 refinement stages: (stage-1 crops, sources) -> every stage's joints.

    Args:
        stage1: maps (B, 3, S, S) uint8 crops to (B, K, 2) box-normalized joints.
        refiners: one network per refinement stage, each mapping (N, 3, c, c) crops to (N, K, 2); the crop of
            joint i reads output i.
        skeleton: gives the torso diagonals of diam(y).
        sigma: joint box side relative to diam(y) (Eq. 7).
        crop_size, source_size: side of the sub-images, and of the sources they are cut from.
        joints: indices of the joints the refinement stages refine (default all K, the paper); the others
            keep their stage-1 position.
    """

    def __init__(self, stage1: nn.Module, refiners: list[nn.Module], skeleton: Skeleton, sigma: float,
                 crop_size: int, source_size: int, joints: list[int] | None = None) -> None:
        super().__init__()
        self.stage1 = stage1
        self.refiners = nn.ModuleList(refiners)
        self.skeleton = skeleton
        self.sigma = sigma
        self.crop_size = crop_size
        self.source_size = source_size
        self.joints = list(range(skeleton.num_joints)) if joints is None else list(joints)
        if not self.joints or not all(0 <= j < skeleton.num_joints for j in self.joints):
            raise ValueError(f"joints: expected indices in 0..{skeleton.num_joints - 1}, got {joints}")

    @property
    def num_stages(self) -> int:
        return 1 + len(self.refiners)

    def forward(self, images: torch.Tensor, sources: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """(B, 3, S, S) stage-1 crops and (B, 3, R, R) sources of the same boxes -> (B, n, K, 2) joints of
        stages 1..n (n = `stages`, default all), box-normalized."""
        return self.forward_with_confidence(images, sources, stages)[0]

    def forward_with_confidence(self, images: torch.Tensor, sources: torch.Tensor, stages: int | None = None
                                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like `forward`, plus (B, K) per-joint confidence: stage 1's, the stage that found each joint (the
        refinement stages only move it within its joint box)."""
        n = self.num_stages if stages is None else stages
        if not 1 <= n <= self.num_stages:
            raise ValueError(f"stages must be in 1..{self.num_stages}, got {n}")
        if sources.ndim != 4 or sources.shape[-2:] != (self.source_size, self.source_size):
            raise ValueError(f"sources: expected (B, 3, {self.source_size}, {self.source_size}), got "
                             f"{tuple(sources.shape)}")
        first = head_output(self.stage1, images)
        out = [first.joints.float()]
        joints = torch.tensor(self.joints, device=images.device)
        for refiner in self.refiners[: n - 1]:
            out.append(refinement_stage(refiner, sources, out[-1], self.skeleton, self.sigma, self.crop_size, joints))
        return torch.stack(out, dim=1), first.confidence.float()
