"""Predictor: a trained checkpoint applied to images (crop of a box, forward, optional flip test, un-warp)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeppose.checkpoint import model_from_checkpoint
from deeppose.data.sample import PoseDataset, Sample
from deeppose.data.transforms import crop_sample
from deeppose.evaluation import crops_to_image, predict_dataset
from deeppose.skeleton import Skeleton, get_skeleton


def flip_average(model: nn.Module, images: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """Flip test: average the prediction on the crop and, mirrored back with left/right swapped, on its mirror.

    Mirroring a crop maps normalized x to -x exactly (the crop convention is symmetric about its centre).

    Args:
        images: (B, 3, S, S) crops.

    Returns:
        (B, K, 2) normalized coordinates.
    """
    pred = model(images)
    mirrored = model(images.flip(-1))[:, skeleton.flip_permutation()]
    mirrored = torch.stack([-mirrored[..., 0], mirrored[..., 1]], dim=-1)
    return (pred + mirrored) / 2


class Predictor(nn.Module):
    """Stage-1 inference: uint8 crops -> normalized joints, with the flip test when `flip` is set.

    >>> predictor = Predictor.from_checkpoint("models/deeppose_mobilenet_v2_lsp.pt", flip=True)  # doctest: +SKIP
    >>> joints = predictor.predict_image(image)  # (K, 2) pixels, whole image as the box  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, meta: dict[str, Any], flip: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.meta = meta
        self.skeleton = get_skeleton(meta["skeleton"])
        self.input_size = int(meta["input_size"])
        self.flip = flip

    @classmethod
    def from_checkpoint(cls, path: str | Path, flip: bool = False) -> Predictor:
        model, meta = model_from_checkpoint(path)
        return cls(model, meta, flip)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) uint8 crops -> (B, K, 2) normalized crop coordinates."""
        return flip_average(self.model, images, self.skeleton) if self.flip else self.model(images)

    @torch.inference_mode()
    def predict_image(self, image: np.ndarray, box: np.ndarray | None = None) -> np.ndarray:
        """One RGB image (H, W, 3) uint8 and an optional box (c_x, c_y, w, h) -> (K, 2) joints in pixels."""
        k = self.skeleton.num_joints
        sample = Sample(Path(""), np.zeros((k, 2), np.float32), np.zeros(k, bool), np.zeros(k, bool),
                        None if box is None else np.asarray(box, np.float32))
        crop, _, _, _, affine = crop_sample(image, sample, self.skeleton, (self.input_size, self.input_size))
        x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None]
        u = self(x)
        return crops_to_image(u, torch.from_numpy(affine)[None], self.input_size)[0].numpy()

    def predict_dataset(self, dataset: PoseDataset, batch_size: int = 32, num_workers: int = 0,
                        progress: bool = True) -> np.ndarray:
        """(N, K, 2) pixel predictions for every sample of a dataset (its boxes, else whole images)."""
        if dataset.skeleton.name != self.skeleton.name:
            raise ValueError(f"model predicts {self.skeleton.name} joints, dataset {dataset.name} has "
                             f"{dataset.skeleton.name}")
        return predict_dataset(self, dataset, self.input_size, batch_size, num_workers, progress)
