"""Batch inference over a dataset's plain crops (no augmentation), and the un-warp back to image pixels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import CropDataset
from deeppose.geometry import invert_affine, normalized_to_crop_pixel, transform_points


def crops_to_image(u: torch.Tensor, affine: torch.Tensor, input_size: int) -> torch.Tensor:
    """Normalized crop coordinates (B, K, 2) -> image pixels, through the inverse of the crop affine (B, 2, 3)."""
    q = normalized_to_crop_pixel(u, (input_size, input_size))
    return transform_points(invert_affine(affine.double()), q.double())


@torch.inference_mode()
def predict_dataset(model: Callable[..., Any], dataset: PoseDataset, input_size: int, batch_size: int = 64,
                    num_workers: int = 0, progress: bool = True, source_size: int | None = None,
                    with_confidence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Predict every sample of `dataset` (plain crop of its box, no augmentation).

    Args:
        model: maps (B, 3, S, S) uint8 crops to (B, K, 2) normalized crop coordinates (a module is put in eval
            mode here); with `source_size` it also takes (B, 3, R, R) sources, the boxes sampled at R pixels.
            With `with_confidence` it returns (coordinates, (B, K) confidence).

    Returns:
        float64 predictions in image pixels, shaped like the model's output: (N, K, 2), or (N, n, K, 2) for
        the n stages of a cascade; with `with_confidence`, also the (N, K) confidences.
    """
    device = torch.device("cpu")
    if isinstance(model, nn.Module):
        model.eval()
        device = next(model.parameters(), torch.empty(0)).device  # a network trained on a GPU is validated there
    loader = DataLoader(CropDataset(dataset, input_size, source_size=source_size), batch_size=batch_size,
                        num_workers=num_workers, generator=torch.Generator())
    out, confidences = [], []
    for batch in tqdm(loader, desc="predicting", disable=not progress, unit="batch"):
        images = batch["image"].to(device)
        u = model(images, batch["source"].to(device)) if source_size else model(images)
        if with_confidence:
            u, c = u
            confidences.append(c.float().cpu().numpy())
        u = u.cpu()
        shape = u.shape
        out.append(crops_to_image(u.reshape(shape[0], -1, 2), batch["affine"], input_size).reshape(shape).numpy())
    pred = np.concatenate(out)
    return (pred, np.concatenate(confidences).astype(np.float64)) if with_confidence else pred
