"""Training canvases for the person detector: mosaics of whole photos, each tile bringing its annotated person,
and real photos with nobody in them.

Each item is an S x S canvas cut into g x g tiles (g = 1, 2 or 3, drawn with `Mosaic.grids`). A tile shows either a
photo of people (its one annotated person, framed as `data.whole_image` frames the localizer's views: the whole
photo squared, or zoomed out so that the person is small and anywhere) or a photo with nobody in it (a random
square region of it). Everything is drawn from (seed, epoch, index).

The targets, on the detector's stride-4 grid (`models.detector`):

- heat (G, G): CenterNet's Gaussian around each annotated person's centre cell (1 there), sigma growing with the
  person's size;
- people: up to `MAX_PEOPLE` annotated people per canvas: their centre cell, their joints' offsets from it (cells,
  `serve.detect`'s convention) and which joints carry a loss (labelled);
- may_hold_people (G, G): the cells of tiles cut from photos of people. Photos of people often show people nobody
  annotated (a crowd behind the athlete); the detector's loss does not call them background where it already
  sees a person there (`train.detector.centre_loss`). Tiles cut from photos with nobody hold no such cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import SeededDataset
from deeppose.data.whole_image import ZoomOut, zoom_out_box
from deeppose.geometry import augmentation_matrix, joints_box, square_box, transform_points, warp_image, whole_image_box

MAX_PEOPLE = 9
STRIDE = 4


@dataclass(frozen=True)
class Mosaic:
    """How the detector's training canvases are drawn.

    Attributes:
        grids: the probabilities of a canvas of 1 x 1, 2 x 2 and 3 x 3 tiles.
        nobody_prob: share of tiles cut from a photo with nobody in it.
        whole_prob: share of person tiles showing the whole photo (squared); the others are zoomed out.
        zoom: how a zoomed-out tile frames its person (`person_fraction`, `inside_prob`, `box_scale`) and the mirror
            and photometric jitter of every tile (`zoom.augment`: rotation, flip, brightness, contrast).
        nobody_region: (low, high) side of a nobody tile's region over the photo's shorter side.
        sigma: (factor, low, high): the centre Gaussian's sigma in cells, factor x the person's extent in cells,
            clipped to [low, high].
    """

    grids: tuple[float, float, float] = (0.45, 0.4, 0.15)
    nobody_prob: float = 0.3
    whole_prob: float = 0.3
    zoom: ZoomOut = field(default_factory=ZoomOut)
    nobody_region: tuple[float, float] = (0.3, 1.0)
    sigma: tuple[float, float, float] = (0.1, 0.8, 3.0)


def centre_cell(centre: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """The grid cell (column, row) a person centred at input pixel `centre` (..., 2) is assigned to: the cell whose
    position, cell * stride - 0.5 (`serve.detect`), is nearest."""
    return np.rint((np.asarray(centre, np.float64) + 0.5) / stride).astype(int)


def gaussian_heat(grid: int, cells: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """(grid, grid) float32: the maximum over people of exp(-|c - cell|^2 / (2 sigma^2)) (1 at each centre cell).

    Args:
        cells: (P, 2) centre cells (column, row); sigmas: (P,) in cells.
    """
    heat = np.zeros((grid, grid), np.float32)
    cols, rows = np.meshgrid(np.arange(grid), np.arange(grid))
    for (cx, cy), s in zip(cells, sigmas):
        heat = np.maximum(heat, np.exp(-((cols - cx) ** 2 + (rows - cy) ** 2) / (2 * s * s)).astype(np.float32))
    return heat


class MosaicDataset(SeededDataset):
    """Detector training canvases from photos of people (one annotated person each) and photos with nobody.

    Each item is a dict: image (3, S, S) uint8; heat (G, G) float32; may_hold_people (G, G) bool; cells (P, 2)
    int64 centre cells (column, row); offsets (P, K, 2) float32 joints' offsets from their cell in cells; weight
    (P, K) bool; present (P,) bool (which of the P = MAX_PEOPLE slots hold a person); index. G = S / 4.

    Args:
        people: photos with one annotated person each (LSP, LSPET); an epoch has one canvas per photo.
        nobody: photos with nobody in them.
        nobody_weights: (len(nobody),) how often each is drawn, relatively (hard-negative mining,
            `train.detector.mined_weights`); None: uniformly.
        input_size: S, a multiple of 12 (so that 2 x 2 and 3 x 3 tiles fall on whole cells).
    """

    def __init__(self, people: PoseDataset, nobody: list[Path], input_size: int, mosaic: Mosaic | None = None,
                 seed: int = 0, nobody_weights: np.ndarray | None = None) -> None:
        super().__init__(people, input_size, seed)
        if input_size % 12:
            raise ValueError(f"the canvas side must be a multiple of 12, got {input_size}")
        if not nobody:
            raise ValueError("the detector's canvases need photos with nobody in them")
        self.nobody = list(nobody)
        self.mosaic = mosaic or Mosaic()
        self.nobody_p = None
        if nobody_weights is not None:  # hard-negative mining: some photos drawn more often
            w = np.asarray(nobody_weights, np.float64)
            if w.shape != (len(self.nobody),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"nobody_weights: {len(self.nobody)} non-negative weights expected")
            self.nobody_p = w / w.sum()

    def grid(self, rng: np.random.Generator) -> int:
        """The number of tiles per side of one canvas."""
        probs = np.asarray(self.mosaic.grids, np.float64)
        return 1 + int(rng.choice(len(probs), p=probs / probs.sum()))

    def person_tile(self, rng: np.random.Generator, index: int, side: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A tile of photo `index`: ((side, side, 3) uint8, (K, 2) its person's joints in tile pixels, (K,)
        labelled)."""
        sample = self.dataset.samples[index]
        image = read_image(sample.image_path)
        h, w = image.shape[:2]
        z = self.mosaic.zoom
        whole = square_box(whole_image_box(w, h))
        person = joints_box(sample.joints, sample.labelled, z.box_scale)
        if rng.random() < self.mosaic.whole_prob:
            box = whole
        else:
            box = zoom_out_box(rng, person, z, whole if rng.random() < z.inside_prob else None)
        flip = bool(rng.random() < z.augment.flip_prob)
        rotation = float(rng.uniform(-z.augment.rotation_deg, z.augment.rotation_deg))
        a = augmentation_matrix(box, (side, side), rotation, 1.0, (0.0, 0.0), flip)
        tile = self.jitter(rng, warp_image(image, a, (side, side)))
        joints = transform_points(a, sample.joints.astype(np.float64))
        labelled = sample.labelled.copy()
        if flip:
            perm = self.dataset.skeleton.flip_permutation()
            joints, labelled = joints[perm], labelled[perm]
        return tile, joints, labelled

    def nobody_tile(self, rng: np.random.Generator, side: int) -> np.ndarray:
        """A (side, side, 3) tile cut from a random photo with nobody in it (drawn by `nobody_weights` where given)."""
        pick = int(rng.choice(len(self.nobody), p=self.nobody_p)) if self.nobody_p is not None else \
            int(rng.integers(len(self.nobody)))
        image = read_image(self.nobody[pick])
        h, w = image.shape[:2]
        lo, hi = self.mosaic.nobody_region
        region = float(rng.uniform(lo, hi)) * min(w, h)
        cx = float(rng.uniform(region / 2 - 0.5, w - 0.5 - region / 2)) if w > region else (w - 1) / 2
        cy = float(rng.uniform(region / 2 - 0.5, h - 0.5 - region / 2)) if h > region else (h - 1) / 2
        if rng.random() < self.mosaic.whole_prob:  # the whole photo, squared with black bars, as at inference
            box = square_box(whole_image_box(w, h))
        else:
            box = np.array([cx, cy, region, region])
        flip = bool(rng.random() < self.mosaic.zoom.augment.flip_prob)
        return self.jitter(rng, warp_image(image, augmentation_matrix(box, (side, side), 0.0, 1.0, (0.0, 0.0), flip),
                                           (side, side)))

    def jitter(self, rng: np.random.Generator, tile: np.ndarray) -> np.ndarray:
        """Brightness and contrast jitter (`Mosaic.zoom.augment`) of one tile."""
        aug = self.mosaic.zoom.augment
        brightness = 1.0 + float(rng.uniform(-aug.brightness, aug.brightness))
        contrast = 1.0 + float(rng.uniform(-aug.contrast, aug.contrast))
        mean = tile.mean()
        return np.clip((tile.astype(np.float32) - mean) * contrast + mean * brightness, 0, 255).astype(np.uint8)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        rng = self.rng(index)
        size, k = self.input_size, self.dataset.skeleton.num_joints
        g = self.grid(rng)
        side = size // g
        cells_per_tile = side // STRIDE
        grid = size // STRIDE
        canvas = np.zeros((size, size, 3), np.uint8)
        may_hold = np.zeros((grid, grid), bool)
        cells, offsets, weights, sigmas = [], [], [], []
        first = True
        for row in range(g):
            for col in range(g):
                ox, oy = col * side, row * side
                if rng.random() < self.mosaic.nobody_prob:
                    canvas[oy:oy + side, ox:ox + side] = self.nobody_tile(rng, side)
                    continue
                # the canvas's own photo first, then random others
                photo = index if first else int(rng.integers(len(self.dataset)))
                first = False
                tile, joints, labelled = self.person_tile(rng, photo, side)
                canvas[oy:oy + side, ox:ox + side] = tile
                may_hold[row * cells_per_tile:(row + 1) * cells_per_tile,
                         col * cells_per_tile:(col + 1) * cells_per_tile] = True
                if not labelled.any():
                    continue
                joints = joints + np.array([ox, oy])
                lo, hi = joints[labelled].min(axis=0), joints[labelled].max(axis=0)
                centre = (lo + hi) / 2
                if not ((centre >= [ox - 0.5, oy - 0.5]) & (centre < [ox + side - 0.5, oy + side - 0.5])).all():
                    continue  # its centre is outside the tile: no one to find there
                cell = np.clip(centre_cell(centre), 0, grid - 1)
                cells.append(cell)
                offsets.append((joints + 0.5) / STRIDE - cell)
                weights.append(labelled)
                factor, low, high = self.mosaic.sigma
                sigmas.append(float(np.clip(factor * (hi - lo).max() / STRIDE, low, high)))
        n = len(cells)
        out_cells = np.zeros((MAX_PEOPLE, 2), np.int64)
        out_offsets = np.zeros((MAX_PEOPLE, k, 2), np.float32)
        out_weight = np.zeros((MAX_PEOPLE, k), bool)
        present = np.zeros(MAX_PEOPLE, bool)
        if n:
            out_cells[:n], out_offsets[:n], out_weight[:n], present[:n] = cells, offsets, weights, True
        return {
            "image": torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1))),
            "heat": torch.from_numpy(gaussian_heat(grid, np.asarray(cells).reshape(-1, 2), np.asarray(sigmas))),
            "may_hold_people": torch.from_numpy(may_hold),
            "cells": torch.from_numpy(out_cells),
            "offsets": torch.from_numpy(out_offsets),
            "weight": torch.from_numpy(out_weight),
            "present": torch.from_numpy(present),
            "index": index,
        }
