"""Predictor: a trained checkpoint applied to images: find the person (or take the given box), crop, forward,
optional flip test, un-warp, re-crop until the box converges (`deeppose.serve.localize`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset, Sample
from deeppose.data.transforms import crop_sample
from deeppose.errors import DeepPoseError
from deeppose.geometry import centre_box, corner_box, square_box, whole_image_box
from deeppose.models.cascade import Cascade
from deeppose.models.checkpoint import model_from_checkpoint
from deeppose.models.localizer import PersonLocalizer
from deeppose.models.meta import BoxRule, ModelMeta
from deeppose.serve.backend import Networks, OnnxNetworks, TorchNetworks
from deeppose.serve.batch import crops_to_image, predict_dataset
from deeppose.serve.images import as_rgb
from deeppose.serve.localize import (
    BOX_SCALE,
    FOUND_THRESHOLD,
    RECROPS,
    TOLERANCE,
    annotated_box,
    checked_box,
    person_box,
    presence_probability,
    recrop_until_converged,
)
from deeppose.skeleton import Skeleton, get_skeleton

BOX_SOURCES = ("found", "annotated", "image")


def mirror_joints(u: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """Joints predicted on a mirrored crop, mapped back: left/right swapped and x negated.

    Mirroring a crop maps normalized x to -x exactly (the crop convention is symmetric about its centre).

    Args:
        u: (..., K, 2) normalized coordinates.
    """
    u = u[..., skeleton.flip_permutation(), :]
    return torch.stack([-u[..., 0], u[..., 1]], dim=-1)


@dataclass
class Prediction:
    """One image's result.

    Attributes:
        joints: (K, 2) pixels (the last stage run); stages: (n, K, 2) every stage.
        confidence: (K,) per-joint confidence in [0, 1] (NaN: the model has none), times `person_score` when
            there is one, so that the joints of an image with nobody in it are not trusted.
        box: (4,) [x, y, w, h] the person box of the final prediction, in pixels from the top-left corner (the
            convention of the command line, the JSON and every box the API takes).
        box_source: "given" (the caller's), "found" (localized) or "image" (the whole image, LSP's convention).
        person_score: the calibrated probability that a person is in view, None without a localizer.
        person_found: person_score >= 0.5, None without a localizer.
        passes: pose-network passes (1 + the re-crops done).
    """

    joints: np.ndarray
    stages: np.ndarray
    confidence: np.ndarray
    box: np.ndarray
    box_source: str
    person_score: float | None
    person_found: bool | None
    passes: int


class Predictor(nn.Module):
    """Inference with a stage-1 model or a cascade, and optionally a person localizer in front of it.

    >>> predictor = Predictor.from_checkpoint("models/deeppose_movenet_person.pt")  # doctest: +SKIP
    >>> result = predictor.predict(image)  # RGB (H, W, 3) uint8: person found, joints in pixels  # doctest: +SKIP

    Args:
        model: a stage-1 regressor, or a `Cascade` (None when `networks` runs an export).
        meta: its checkpoint meta.
        flip: flip test.
        stages: for a cascade, run stages 1..stages (default all).
        localizer: a `PersonLocalizer` that finds the person when no box is given (None: the whole image).
        localizer_meta: its checkpoint meta (input size, box scale, presence calibration).
        recrops: re-crops on the pose network's own prediction after localization (0: none; None: the
            localizer's setting, `localizer_meta.box_rule.recrops`, else `serve.localize.RECROPS`).
        tol: a re-crop stops once the box moves by less than this fraction of its side.
        networks: what runs the networks (`serve.backend`); default: `model` and `localizer` in PyTorch.
    """

    def __init__(self, model: nn.Module | None, meta: ModelMeta, flip: bool = False, stages: int | None = None,
                 localizer: PersonLocalizer | None = None, localizer_meta: ModelMeta | None = None,
                 recrops: int | None = None, tol: float = TOLERANCE, networks: Networks | None = None) -> None:
        super().__init__()
        self.model = None if model is None else model.eval()
        self.meta = meta
        self.skeleton = get_skeleton(meta.skeleton)
        self.input_size = meta.input_size
        self.flip = flip
        self.is_cascade = meta.kind == "cascade"
        if model is not None and isinstance(model, Cascade) != self.is_cascade:
            raise ValueError(f"the model is {'a' if isinstance(model, Cascade) else 'not a'} cascade, its meta says "
                             f"{meta.kind!r}")
        self.source_size = meta.cascade.source_size if self.is_cascade else None
        self.num_stages = meta.stages
        if stages is not None and not 1 <= stages <= self.num_stages:
            raise ValueError(f"stages must be in 1..{self.num_stages} for this model, got {stages}")
        self.stages = stages or self.num_stages
        self.localizer_meta = localizer_meta
        self.box_rule = (localizer_meta.box_rule if localizer_meta is not None else None) or BoxRule(BOX_SCALE)
        if recrops is None:
            recrops = RECROPS if self.box_rule.recrops is None else self.box_rule.recrops
        if recrops < 0 or tol < 0:
            raise ValueError(f"recrops and tol must be non-negative, got {recrops} and {tol}")
        self.localizer = None if localizer is None else localizer.eval()
        if localizer is not None and localizer_meta is None:
            raise ValueError("a localizer needs its checkpoint meta (input size, box rule, calibration)")
        if localizer_meta is not None and localizer_meta.skeleton != self.skeleton.name:
            raise ValueError(f"the localizer predicts {localizer_meta.skeleton} joints, the pose model "
                             f"{self.skeleton.name}")
        self.recrops = recrops
        self.tol = tol
        if networks is None and model is None:
            raise ValueError("a Predictor needs a model, or the networks that run one (serve.backend)")
        self.networks = networks or TorchNetworks(model, self.localizer, self.stages)

    @property
    def has_localizer(self) -> bool:
        """Whether the person is found when no box is given (else the whole image is the box)."""
        return self.localizer_meta is not None

    @classmethod
    def from_checkpoint(cls, path: str | Path, flip: bool = False, stages: int | None = None,
                        localizer: str | Path | None = None, localize: bool = True, recrops: int | None = None,
                        threads: int = 0) -> Predictor:
        """A Predictor from a checkpoint: a stage-1 model, a cascade, or a pipeline (localizer + pose model, the
        shipped default); `localizer` adds one from a localizer checkpoint or a pipeline's; `localize=False` leaves
        it out. An ONNX export (`deeppose export`: the .onnx or its .json) runs on ONNX Runtime (`from_export`,
        `threads`)."""
        if Path(path).suffix in (".onnx", ".json"):
            if localizer is not None:
                raise DeepPoseError(localizer, "an ONNX export carries its localizer; --localizer takes checkpoints")
            return cls.from_export(path, flip, stages, localize, recrops, threads)
        model, meta = model_from_checkpoint(path)
        loc, loc_meta = None, None
        if meta.kind == "pipeline":
            loc, loc_meta = model.localizer, meta.localizer
            model, meta = model.pose, meta.pose
        elif meta.kind == "localizer":
            raise DeepPoseError(path, "this is a person localizer alone; give it as --localizer next to a pose model")
        if localizer is not None:  # a localizer checkpoint, or a pipeline whose localizer is taken
            loc, loc_meta = model_from_checkpoint(localizer)
            if loc_meta.kind == "pipeline":
                loc, loc_meta = loc.localizer, loc_meta.localizer
            if loc_meta.kind != "localizer":
                raise DeepPoseError(localizer, "not a person localizer checkpoint (nor a pipeline holding one)")
        try:
            return cls(model, meta, flip, stages, loc if localize else None, loc_meta if localize else None,
                       recrops)
        except ValueError as exc:
            raise DeepPoseError(path, str(exc)) from None

    @classmethod
    def from_export(cls, path: str | Path, flip: bool = False, stages: int | None = None, localize: bool = True,
                    recrops: int | None = None, threads: int = 0) -> Predictor:
        """A Predictor on ONNX Runtime from an export (`serve.export`; path: its .onnx or .json), `threads`
        intra-op threads (0: ONNX Runtime's choice)."""
        from deeppose.serve.export import read_export

        sidecar, meta, loc_meta = read_export(path)
        folder = Path(path).parent
        loc_file = folder / sidecar["localizer"]["file"] if localize and loc_meta is not None else None
        networks = OnnxNetworks(folder / sidecar["pose"]["file"], loc_file, stages, threads)
        try:
            return cls(None, meta, flip, stages, None, loc_meta if loc_file else None, recrops, networks=networks)
        except ValueError as exc:
            raise DeepPoseError(path, str(exc)) from None

    def all_stages(self, images: torch.Tensor, sources: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) uint8 crops [and (B, 3, R, R) sources for a cascade] -> (B, n, K, 2) normalized joints of
        stages 1..n (n = `stages`; 1 for a stage-1 model)."""
        return self.all_stages_with_confidence(images, sources)[0]

    def all_stages_with_confidence(self, images: torch.Tensor, sources: torch.Tensor | None = None
                                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like `all_stages`, plus the (B, K) per-joint confidence in [0, 1] (NaN where the model has none; see
        `HeadOutput.confidence`); with the flip test, the mean of both passes'."""
        u, confidence = self.networks.pose(images, sources)
        if self.flip:
            u_flip, c_flip = self.networks.pose(images.flip(-1), None if sources is None else sources.flip(-1))
            u = (u + mirror_joints(u_flip, self.skeleton)) / 2
            confidence = (confidence + c_flip[:, self.skeleton.flip_permutation()]) / 2
        return u, confidence

    def forward(self, images: torch.Tensor, sources: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) uint8 crops [and sources] -> (B, K, 2) normalized joints of the last stage run."""
        return self.all_stages(images, sources)[:, -1]

    def _crops(self, images: Sequence[np.ndarray], boxes: np.ndarray, size: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, size, size) uint8 crops of the squared boxes (B, 4) and their (B, 2, 3) affines."""
        k = self.skeleton.num_joints
        crops, affines = [], []
        for image, box in zip(images, boxes):
            sample = Sample(Path(""), np.zeros((k, 2), np.float32), np.zeros(k, bool), np.zeros(k, bool),
                            np.asarray(box, np.float32))
            crop, _, _, _, affine = crop_sample(image, sample, self.skeleton, (size, size))
            crops.append(crop.transpose(2, 0, 1))
            affines.append(affine)
        return torch.from_numpy(np.ascontiguousarray(np.stack(crops))), torch.from_numpy(np.stack(affines))

    @torch.inference_mode()
    def pose_in_boxes(self, images: Sequence[np.ndarray], boxes: np.ndarray, batch_size: int = 32
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The pose network on each image's box: ((B, n, K, 2) pixels of stages 1..n, (B, K) confidence)."""
        joints, confidences = [], []
        for lo in range(0, len(images), batch_size):
            ims, bxs = images[lo:lo + batch_size], boxes[lo:lo + batch_size]
            x, affine = self._crops(ims, bxs, self.input_size)
            sources = self._crops(ims, bxs, self.source_size)[0] if self.is_cascade else None
            u, confidence = self.all_stages_with_confidence(x, sources)
            pixels = crops_to_image(u.reshape(len(ims), -1, 2), affine, self.input_size).reshape(u.shape)
            joints.append(pixels.numpy())
            confidences.append(confidence.float().numpy())
        return np.concatenate(joints), np.concatenate(confidences).astype(np.float64)

    @torch.inference_mode()
    def presence_and_pose(self, images: Sequence[np.ndarray], boxes: np.ndarray | None = None,
                          batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """The localizer on each image (its squared whole image, or `boxes`): ((B,) calibrated person_score,
        (B, K, 2) its coarse joints in pixels)."""
        if not self.has_localizer:
            raise ValueError("this predictor has no person localizer")
        size = self.localizer_meta.input_size
        if boxes is None:
            boxes = np.stack([square_box(whole_image_box(im.shape[1], im.shape[0])) for im in images])
        logits, joints = [], []
        for lo in range(0, len(images), batch_size):
            x, affine = self._crops(images[lo:lo + batch_size], boxes[lo:lo + batch_size], size)
            u, logit = self.networks.localize(x)
            joints.append(crops_to_image(u, affine, size).numpy())
            logits.append(logit.float().numpy())
        rule = self.box_rule
        return presence_probability(np.concatenate(logits), rule.a, rule.b), np.concatenate(joints)

    def predict_images(self, images: Sequence[np.ndarray], boxes: Sequence[Any] | None = None,
                       batch_size: int = 32) -> list[Prediction]:
        """Predict RGB (H, W, 3) uint8 images (grayscale, RGBA and PIL images are converted: `images.as_rgb`). A
        given box [x, y, w, h] (pixels, from the top-left corner, as on the command line and in the JSON) wins;
        else the localizer finds the person and the box is re-cropped until it converges; without a localizer the
        whole image is the box."""
        images = [as_rgb(im) for im in images]
        boxes = list(boxes) if boxes is not None else [None] * len(images)
        return self._predict_centred(images, [None if b is None else centred(b) for b in boxes], batch_size)

    def _predict_centred(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None],
                         batch_size: int = 32) -> list[Prediction]:
        """`predict_images` on RGB arrays with boxes in the centre form (c_x, c_y, w, h) the crops use."""
        if len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        given = [i for i, b in enumerate(boxes) if b is not None]
        free = [i for i, b in enumerate(boxes) if b is None]
        n = len(images)
        final = np.zeros((n, 4))
        scores = np.full(n, np.nan)
        source = ["given"] * n
        passes = np.ones(n, int)
        stage_joints: np.ndarray | None = None
        confidence: np.ndarray | None = None

        def put(idx: list[int], j: np.ndarray, c: np.ndarray) -> None:
            nonlocal stage_joints, confidence
            if stage_joints is None:
                stage_joints, confidence = np.zeros((n, *j.shape[1:])), np.zeros((n, *c.shape[1:]))
            stage_joints[idx], confidence[idx] = j, c

        if given:
            bx = np.stack([checked_box(boxes[i], images[i].shape[1], images[i].shape[0]) for i in given])
            final[given] = bx
            put(given, *self.pose_in_boxes([images[i] for i in given], bx, batch_size))
            if self.has_localizer:
                scores[given] = self.presence_and_pose([images[i] for i in given], np.stack(
                    [square_box(b) for b in bx]), batch_size)[0]
        if free:
            ims = [images[i] for i in free]
            if not self.has_localizer:
                bx = np.stack([square_box(whole_image_box(im.shape[1], im.shape[0])) for im in ims])
                final[free] = bx
                put(free, *self.pose_in_boxes(ims, bx, batch_size))
                for i in free:
                    source[i] = "image"
            else:
                score, coarse = self.presence_and_pose(ims, None, batch_size)
                scale = self.box_rule.box_scale
                result = recrop_until_converged(
                    lambda idx, b: self.pose_in_boxes([ims[i] for i in idx], b, batch_size),
                    person_box(coarse, scale), self.recrops, self.tol, scale)
                final[free], scores[free], passes[free] = result.boxes, score, result.iterations
                put(free, result.joints, result.confidence)
                for i in free:
                    source[i] = "found"
        out = []
        for i in range(n):
            has_score = not np.isnan(scores[i])
            conf = confidence[i] * scores[i] if has_score else confidence[i]
            out.append(Prediction(stage_joints[i, -1], stage_joints[i], conf, np.array(corner_box(final[i])), source[i],
                                  float(scores[i]) if has_score else None,
                                  bool(scores[i] >= FOUND_THRESHOLD) if has_score else None, int(passes[i])))
        return out

    def predict(self, image: np.ndarray, box: np.ndarray | None = None) -> Prediction:
        """One RGB image (H, W, 3) uint8 (or grayscale, RGBA, PIL) and an optional person box [x, y, w, h] -> its
        `Prediction`."""
        return self.predict_images([image], [box])[0]

    def predict_file(self, path: str | Path, box: np.ndarray | None = None) -> Prediction:
        """`predict` on an image file (read as RGB, so no channel-order question arises)."""
        return self.predict(read_image(path), box)

    def predict_image(self, image: np.ndarray, box: np.ndarray | None = None, all_stages: bool = False) -> np.ndarray:
        """One RGB image (H, W, 3) uint8 and an optional box [x, y, w, h] -> (K, 2) joints in pixels
        ((n, K, 2), every stage, with `all_stages`); the person is found first when no box is given."""
        return self.predict_image_with_confidence(image, box, all_stages)[0]

    def predict_image_with_confidence(self, image: np.ndarray, box: np.ndarray | None = None,
                                      all_stages: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Like `predict_image`, plus the (K,) per-joint confidence in [0, 1] (NaN: the model has none), to
        threshold on."""
        result = self.predict(image, box)
        return (result.stages if all_stages else result.joints), result.confidence

    def boxes_for(self, samples: Sequence[Sample], images: Sequence[np.ndarray], dataset: str, mode: str
                  ) -> list[np.ndarray | None]:
        """The box of each sample (its decoded image beside it) for an evaluation mode: "annotated"
        (`serve.localize.annotated_box`), "image" (the whole image) or "found" (None: the localizer finds it)."""
        if mode not in BOX_SOURCES:
            raise ValueError(f"box mode must be one of {', '.join(BOX_SOURCES)}, got {mode!r}")
        if mode == "found":
            if not self.has_localizer:
                raise ValueError("found boxes need a person localizer (a pipeline checkpoint, or --localizer)")
            return [None] * len(samples)
        return [square_box(whole_image_box(im.shape[1], im.shape[0])) if mode == "image" else
                annotated_box(s.box, s.joints, s.labelled, dataset, im.shape[1], im.shape[0])
                for s, im in zip(samples, images)]

    def predict_boxes(self, dataset: PoseDataset, mode: str, batch_size: int = 32, progress: bool = False,
                      chunk: int = 256) -> list[Prediction]:
        """`predict_images` over a dataset's images with the boxes of `mode` (see `boxes_for`), reading `chunk`
        images at a time."""
        from tqdm import tqdm

        self.boxes_for([], [], dataset.name, mode)  # refuse a bad mode before reading any image
        out: list[Prediction] = []
        for lo in tqdm(range(0, len(dataset), chunk), desc=f"predicting ({mode} boxes)", disable=not progress,
                       unit="chunk"):
            samples = dataset.samples[lo:lo + chunk]
            images = [read_image(s.image_path) for s in samples]
            out += self._predict_centred(images, self.boxes_for(samples, images, dataset.name, mode), batch_size)
        return out

    def predict_dataset(self, dataset: PoseDataset, batch_size: int = 32, num_workers: int = 0,
                        progress: bool = True, all_stages: bool = False, with_confidence: bool = False
                        ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(N, K, 2) pixel predictions for every sample of a dataset in its own boxes (else whole images, no
        localization: the dataset's convention); (N, n, K, 2), every stage, with `all_stages`; with
        `with_confidence`, also the (N, K) confidences."""
        if dataset.skeleton.name != self.skeleton.name:
            raise ValueError(f"model predicts {self.skeleton.name} joints, dataset {dataset.name} has "
                             f"{dataset.skeleton.name}")
        run = self.all_stages_with_confidence if with_confidence else self.all_stages
        out = predict_dataset(run, dataset, self.input_size, batch_size, num_workers, progress,
                              source_size=self.source_size, with_confidence=with_confidence)
        pred, confidence = out if with_confidence else (out, None)
        pred = pred if all_stages else pred[:, -1]
        return (pred, confidence) if with_confidence else pred


def centred(box: Any) -> np.ndarray:
    """A caller's box [x, y, w, h] (top-left corner) in the centre form (c_x, c_y, w, h); DeepPoseError when it
    is not 4 numbers."""
    b = np.asarray(box, np.float64)
    if b.shape != (4,):
        raise DeepPoseError(None, f"person box must be 4 finite numbers [x, y, w, h] with positive width and height, "
                                  f"got {np.asarray(box).tolist()}")
    return centre_box(*b)
