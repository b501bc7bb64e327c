"""Torch Datasets over a PoseDataset: `SeededDataset`, their common ground, and `CropDataset`, the crops that
training and evaluation read (the localizer's whole-photo views are `data.whole_image.WholeImageDataset`)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from deeppose.data.everyday import Everyday, apply_everyday
from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset
from deeppose.data.transforms import Augmentation, CropParams, crop_sample, sample_params


class SeededDataset(Dataset):
    """Items of a PoseDataset at a fixed input size whose random draws depend only on (seed, epoch, index), so a
    run is reproducible with any number of loader workers; call `set_epoch` before each epoch."""

    def __init__(self, dataset: PoseDataset, input_size: int, seed: int = 0) -> None:
        self.dataset = dataset
        self.input_size = input_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def rng(self, index: int) -> np.random.Generator:
        """The random draws of item `index` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])


class CropDataset(SeededDataset):
    """Crops of a PoseDataset at a fixed input size.

    Each item is a dict:
        image: (3, H, W) uint8 RGB crop (normalization to the network's mean/std happens in the model).
        joints: (K, 2) float32 normalized crop coordinates.
        labelled, visible: (K,) bool.
        affine: (2, 3) float32 image pixels -> crop pixels (to map predictions back).
        index: int, the sample's position in the PoseDataset.
        source: (3, R, R) uint8, only with `source_size` R: the same crop (same box and random transform)
            sampled at R pixels, from which cascade stages cut their joint sub-images.

    Without `augmentation` every item is the plain crop of its box (evaluation).
    """

    def __init__(self, dataset: PoseDataset, input_size: int, augmentation: Augmentation | None = None,
                 seed: int = 0, source_size: int | None = None) -> None:
        super().__init__(dataset, input_size, seed)
        self.source_size = source_size
        self.augmentation = augmentation

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        sample = self.dataset.samples[index]
        image = read_image(sample.image_path)
        params = CropParams()
        if self.augmentation is not None:
            params = sample_params(self.rng(index), self.augmentation)
        crop, joints, labelled, visible, affine = crop_sample(
            image, sample, self.dataset.skeleton, (self.input_size, self.input_size), params)
        if params.everyday != Everyday():
            crop, visible = self.everyday(crop, joints, visible, params.everyday)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            "joints": torch.from_numpy(joints),
            "labelled": torch.from_numpy(labelled),
            "visible": torch.from_numpy(visible),
            "affine": torch.from_numpy(affine.astype(np.float32)),
            "index": index,
        }
        if self.source_size:
            size = (self.source_size, self.source_size)
            source = crop_sample(image, sample, self.dataset.skeleton, size, params)[0]
            item["source"] = torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1)))
        return item

    def everyday(self, crop: np.ndarray, joints: np.ndarray, visible: np.ndarray, draw: Everyday
                 ) -> tuple[np.ndarray, np.ndarray]:
        """`data.everyday.apply_everyday`, its occluder cut from the training photo the draw names."""
        source = None
        if draw.occluder is not None:
            other = self.dataset.samples[min(int(draw.occluder[4] * len(self.dataset)), len(self.dataset) - 1)]
            source = read_image(other.image_path)
        return apply_everyday(crop, joints, visible, draw, source)
