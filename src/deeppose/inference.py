"""Predictor: a trained checkpoint applied to images (crop of a box, forward, optional flip test, un-warp)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeppose.checkpoint import model_from_checkpoint
from deeppose.data.sample import PoseDataset, Sample
from deeppose.data.transforms import crop_sample
from deeppose.errors import DeepPoseError
from deeppose.evaluation import crops_to_image, predict_dataset
from deeppose.models.cascade import Cascade
from deeppose.models.output import head_output
from deeppose.skeleton import Skeleton, get_skeleton


def mirror_joints(u: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """Joints predicted on a mirrored crop, mapped back: left/right swapped and x negated.

    Mirroring a crop maps normalized x to -x exactly (the crop convention is symmetric about its centre).

    Args:
        u: (..., K, 2) normalized coordinates.
    """
    u = u[..., skeleton.flip_permutation(), :]
    return torch.stack([-u[..., 0], u[..., 1]], dim=-1)


def flip_average(run: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], skeleton: Skeleton
                 ) -> torch.Tensor:
    """Flip test: average the prediction on the inputs and, mapped back, on their mirror images.

    Args:
        run: maps the inputs (crops, and for a cascade the sources) to (..., K, 2) normalized joints.
        inputs: (B, 3, H, W) tensors, all mirrored together.

    Returns:
        The averaged (..., K, 2).
    """
    return (run(*inputs) + mirror_joints(run(*(x.flip(-1) for x in inputs)), skeleton)) / 2


class Predictor(nn.Module):
    """Inference with a stage-1 model or a cascade: uint8 crops (and sources) -> normalized joints.

    >>> predictor = Predictor.from_checkpoint("models/deeppose_mobilenet_v2_lsp.pt", flip=True)  # doctest: +SKIP
    >>> joints = predictor.predict_image(image)  # (K, 2) pixels, whole image as the box  # doctest: +SKIP

    Args:
        model: a stage-1 regressor, or a `Cascade`.
        meta: its checkpoint meta.
        flip: flip test.
        stages: for a cascade, run stages 1..stages (default all).
    """

    def __init__(self, model: nn.Module, meta: dict[str, Any], flip: bool = False, stages: int | None = None) -> None:
        super().__init__()
        self.model = model.eval()
        self.meta = meta
        self.skeleton = get_skeleton(meta["skeleton"])
        self.input_size = int(meta["input_size"])
        self.flip = flip
        self.is_cascade = isinstance(model, Cascade)
        self.source_size = model.source_size if self.is_cascade else None
        self.num_stages = model.num_stages if self.is_cascade else 1
        if stages is not None and not 1 <= stages <= self.num_stages:
            raise ValueError(f"stages must be in 1..{self.num_stages} for this model, got {stages}")
        self.stages = stages or self.num_stages

    @classmethod
    def from_checkpoint(cls, path: str | Path, flip: bool = False, stages: int | None = None) -> Predictor:
        model, meta = model_from_checkpoint(path)
        try:
            return cls(model, meta, flip, stages)
        except ValueError as exc:
            raise DeepPoseError(path, str(exc)) from None

    def all_stages(self, images: torch.Tensor, sources: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) uint8 crops [and (B, 3, R, R) sources for a cascade] -> (B, n, K, 2) normalized joints of
        stages 1..n (n = `stages`; 1 for a stage-1 model)."""
        if self.is_cascade:
            if sources is None:
                raise ValueError("a cascade needs the sources (the boxes sampled at source_size) as well")
            run = partial(self.model, stages=self.stages)
            return flip_average(run, (images, sources), self.skeleton) if self.flip else run(images, sources)
        u = flip_average(self.model, (images,), self.skeleton) if self.flip else self.model(images)
        return u[:, None]

    def all_stages_with_confidence(self, images: torch.Tensor, sources: torch.Tensor | None = None
                                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like `all_stages`, plus the (B, K) per-joint confidence in [0, 1] (NaN where the model has none; see
        `HeadOutput.confidence`); with the flip test, the mean of both passes'."""
        if self.is_cascade:
            if sources is None:
                raise ValueError("a cascade needs the sources (the boxes sampled at source_size) as well")

            def run(*x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return self.model.forward_with_confidence(*x, stages=self.stages)
            inputs: tuple[torch.Tensor, ...] = (images, sources)
        else:
            def run(*x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                out = head_output(self.model, x[0])
                return out.joints[:, None], out.confidence
            inputs = (images,)
        u, confidence = run(*inputs)
        if self.flip:
            u_flip, c_flip = run(*(x.flip(-1) for x in inputs))
            u = (u + mirror_joints(u_flip, self.skeleton)) / 2
            confidence = (confidence + c_flip[:, self.skeleton.flip_permutation()]) / 2
        return u, confidence

    def forward(self, images: torch.Tensor, sources: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) uint8 crops [and sources] -> (B, K, 2) normalized joints of the last stage run."""
        return self.all_stages(images, sources)[:, -1]

    @torch.inference_mode()
    def predict_image(self, image: np.ndarray, box: np.ndarray | None = None, all_stages: bool = False) -> np.ndarray:
        """One RGB image (H, W, 3) uint8 and an optional box (c_x, c_y, w, h) -> (K, 2) joints in pixels
        ((n, K, 2), every stage, with `all_stages`)."""
        return self.predict_image_with_confidence(image, box, all_stages)[0]

    @torch.inference_mode()
    def predict_image_with_confidence(self, image: np.ndarray, box: np.ndarray | None = None,
                                      all_stages: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Like `predict_image`, plus the (K,) per-joint confidence in [0, 1] (NaN: the model has none), to
        threshold on."""
        k = self.skeleton.num_joints
        sample = Sample(Path(""), np.zeros((k, 2), np.float32), np.zeros(k, bool), np.zeros(k, bool),
                        None if box is None else np.asarray(box, np.float32))

        def tensor(size: int) -> tuple[torch.Tensor, np.ndarray]:
            crop, _, _, _, affine = crop_sample(image, sample, self.skeleton, (size, size))
            return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None], affine

        x, affine = tensor(self.input_size)
        u, confidence = self.all_stages_with_confidence(x, tensor(self.source_size)[0] if self.is_cascade else None)
        u = u[0]
        pixels = crops_to_image(u.reshape(1, -1, 2), torch.from_numpy(affine)[None], self.input_size)
        pixels = pixels.reshape(u.shape).numpy()
        return (pixels if all_stages else pixels[-1]), confidence[0].numpy()

    def predict_dataset(self, dataset: PoseDataset, batch_size: int = 32, num_workers: int = 0,
                        progress: bool = True, all_stages: bool = False, with_confidence: bool = False
                        ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(N, K, 2) pixel predictions for every sample of a dataset (its boxes, else whole images);
        (N, n, K, 2), every stage, with `all_stages`; with `with_confidence`, also the (N, K) confidences."""
        if dataset.skeleton.name != self.skeleton.name:
            raise ValueError(f"model predicts {self.skeleton.name} joints, dataset {dataset.name} has "
                             f"{dataset.skeleton.name}")
        run = self.all_stages_with_confidence if with_confidence else self.all_stages
        out = predict_dataset(run, dataset, self.input_size, batch_size, num_workers, progress,
                              source_size=self.source_size, with_confidence=with_confidence)
        pred, confidence = out if with_confidence else (out, None)
        pred = pred if all_stages else pred[:, -1]
        return (pred, confidence) if with_confidence else pred
