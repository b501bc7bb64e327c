"""Predictor: a trained checkpoint applied to photos, as a pipeline of named stages, each a module with one job:

1. find people (`serve.finder`: the person detector, everyone in view; or the one-person localizer; or, without
   either, the whole image; a caller's box skips it);
2. crop and pose (`serve.pose.PoseStage`: every person's box of every photo through the pose network, and the
   cascade, in one batch);
3. refine the box (`serve.localize.recrop_until_converged`: the box rule on the pose, re-cropped until it holds
   still), then the same person found twice is kept once (`serve.detect.suppress`);
4. record (`serve.records`: the JSON contract and the picture).

predict, eval, video, serve and export all run these stages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.geometry import centre_box, corner_box, square_box
from deeppose.models.cascade import Cascade
from deeppose.models.checkpoint import model_from_checkpoint
from deeppose.models.meta import BoxRule, ModelMeta
from deeppose.serve.backend import Networks, OnnxNetworks, TorchNetworks
from deeppose.serve.batch import predict_dataset
from deeppose.serve.detect import person_probability, suppress
from deeppose.serve.finder import DetectorFinder, Finder, LocalizerFinder, whole_photos
from deeppose.serve.images import as_rgb
from deeppose.serve.localize import BOX_SCALE, FOUND_THRESHOLD, RECROPS, TOLERANCE, checked_box, recrop_until_converged
from deeppose.serve.pose import PoseStage
from deeppose.skeleton import get_skeleton

FINDER_KINDS = ("localizer", "detector")


@dataclass
class Person:
    """One person's pose in a photo.

    Attributes:
        joints: (K, 2) pixels (the last stage run); stages: (n, K, 2) every stage.
        confidence: (K,) per-joint confidence in [0, 1] (NaN: the model has none), times `person_score` when
            there is one, so that the joints of someone who may not be there are not trusted.
        box: (4,) [x, y, w, h] the person box of the final prediction, in pixels from the top-left corner (the
            convention of the command line, the JSON and every box the API takes).
        box_source: "given" (the caller's), "found" (by the detector or localizer) or "image" (the whole image,
            LSP's convention).
        person_score: the calibrated probability that a person is there, None without a finder.
        passes: pose-network passes (1 + the re-crops done).
        track_id: on video, the person's track (`serve.track`); None on a photo.
    """

    joints: np.ndarray
    stages: np.ndarray
    confidence: np.ndarray
    box: np.ndarray
    box_source: str
    person_score: float | None
    passes: int
    track_id: int | None = None


@dataclass
class Prediction:
    """One photo's result.

    Attributes:
        people: everyone found (person_score >= the threshold; every given or whole-image box when there is no
            score), best first, at most the predictor's `max_people`; empty: nobody here.
        best: the strongest candidate, found or not (what the deprecated single-person fields report).
        person_found: whether anyone was found; None without a finder.

    The single-person fields of schema 1 (`joints`, `stages`, `confidence`, `box`, `box_source`, `person_score`,
    `passes`) read the best candidate's; deprecated, kept for one release.
    """

    people: list[Person]
    best: Person
    person_found: bool | None

    @property
    def joints(self) -> np.ndarray:
        return self.best.joints

    @property
    def stages(self) -> np.ndarray:
        return self.best.stages

    @property
    def confidence(self) -> np.ndarray:
        return self.best.confidence

    @property
    def box(self) -> np.ndarray:
        return self.best.box

    @property
    def box_source(self) -> str:
        return self.best.box_source

    @property
    def person_score(self) -> float | None:
        return self.best.person_score

    @property
    def passes(self) -> int:
        return self.best.passes


@dataclass
class _Job:
    """One pose job: a box in a photo, where it came from, and the finder's logit for it (None: no finder)."""

    image: int
    box: np.ndarray
    source: str
    logit: float | None


class Predictor:
    """Inference with a stage-1 model or a cascade, and optionally a finder in front of it (the person detector,
    or the one-person localizer).

    >>> predictor = Predictor.from_checkpoint("models/deeppose_movenet_people.pt")  # doctest: +SKIP
    >>> result = predictor.predict(image)  # RGB (H, W, 3) uint8: everyone found, joints in pixels  # doctest: +SKIP
    >>> [p.box for p in result.people]  # doctest: +SKIP

    Args:
        model: a stage-1 regressor, or a `Cascade` (None when `networks` runs an export).
        meta: its checkpoint meta.
        flip: flip test.
        stages: for a cascade, run stages 1..stages (default all).
        localizer: the finder: a `PersonDetector` or a `PersonLocalizer` (None: the whole image is the box).
        localizer_meta: its checkpoint meta (kind, input size, box rule, score calibration).
        recrops: re-crops on the pose network's own prediction after finding (0: none; None: the finder's setting,
            `localizer_meta.box_rule.recrops`, else `serve.localize.RECROPS`).
        tol: a re-crop stops once the box moves by less than this fraction of its side.
        networks: what runs the networks (`serve.backend`); default: `model` and `localizer` in PyTorch.
        max_people: report at most this many people per photo (None: everyone found).
        threshold: the person score from which someone counts as found.
    """

    def __init__(self, model: nn.Module | None, meta: ModelMeta, flip: bool = False, stages: int | None = None,
                 localizer: nn.Module | None = None, localizer_meta: ModelMeta | None = None,
                 recrops: int | None = None, tol: float = TOLERANCE, networks: Networks | None = None,
                 max_people: int | None = None, threshold: float = FOUND_THRESHOLD) -> None:
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
        if localizer is not None and localizer_meta is None:
            raise ValueError("a finder needs its checkpoint meta (input size, box rule, calibration)")
        if localizer_meta is not None:
            if localizer_meta.kind not in FINDER_KINDS:
                raise ValueError(f"a {localizer_meta.kind} does not find people (a detector or localizer does)")
            if localizer_meta.skeleton != self.skeleton.name:
                raise ValueError(f"the {localizer_meta.kind} predicts {localizer_meta.skeleton} joints, the pose "
                                 f"model {self.skeleton.name}")
        self.localizer_meta = localizer_meta
        self.box_rule = (localizer_meta.box_rule if localizer_meta is not None else None) or BoxRule(BOX_SCALE)
        if recrops is None:
            recrops = RECROPS if self.box_rule.recrops is None else self.box_rule.recrops
        if recrops < 0 or tol < 0:
            raise ValueError(f"recrops and tol must be non-negative, got {recrops} and {tol}")
        if max_people is not None and max_people < 1:
            raise ValueError(f"max_people must be at least 1, got {max_people}")
        self.localizer = None if localizer is None else localizer.eval()
        self.recrops = recrops
        self.tol = tol
        self.max_people = max_people
        self.threshold = threshold
        if networks is None and model is None:
            raise ValueError("a Predictor needs a model, or the networks that run one (serve.backend)")
        self.networks = networks or TorchNetworks(model, self.localizer, self.stages)
        self.pose = PoseStage(self.networks, self.skeleton, self.input_size, self.source_size, flip)
        self.finder: Finder | None = None
        if localizer_meta is not None:
            self.finder = (DetectorFinder if localizer_meta.kind == "detector" else LocalizerFinder)(
                self.networks, localizer_meta)

    @property
    def has_localizer(self) -> bool:
        """Whether people are found when no box is given (else the whole image is the box)."""
        return self.finder is not None

    @property
    def finds_everyone(self) -> bool:
        """Whether the finder is the person detector (everyone in view), not the one-person localizer."""
        return isinstance(self.finder, DetectorFinder)

    @classmethod
    def from_checkpoint(cls, path: str | Path, flip: bool = False, stages: int | None = None,
                        localizer: str | Path | None = None, localize: bool = True, recrops: int | None = None,
                        threads: int = 0, max_people: int | None = None) -> Predictor:
        """A Predictor from a checkpoint: a stage-1 model, a cascade, or a pipeline (a detector or localizer + a
        pose model, the shipped default); `localizer` adds a finder from a detector's or localizer's checkpoint or
        a pipeline's; `localize=False` leaves it out. An ONNX export (`deeppose export`: the .onnx or its .json)
        runs on ONNX Runtime (`from_export`, `threads`)."""
        if Path(path).suffix in (".onnx", ".json"):
            if localizer is not None:
                raise DeepPoseError(localizer, "an ONNX export carries its finder; --localizer takes checkpoints")
            return cls.from_export(path, flip, stages, localize, recrops, threads, max_people)
        model, meta = model_from_checkpoint(path)
        loc, loc_meta = None, None
        if meta.kind == "pipeline":
            loc, loc_meta = model.localizer, meta.localizer
            model, meta = model.pose, meta.pose
        elif meta.kind in FINDER_KINDS:
            raise DeepPoseError(path, f"this is a person {meta.kind} alone; give it as --localizer next to a pose "
                                      f"model")
        if localizer is not None:  # a finder's checkpoint, or a pipeline whose finder is taken
            loc, loc_meta = model_from_checkpoint(localizer)
            if loc_meta.kind == "pipeline":
                loc, loc_meta = loc.localizer, loc_meta.localizer
            if loc_meta.kind not in FINDER_KINDS:
                raise DeepPoseError(localizer, "not a person detector or localizer checkpoint (nor a pipeline "
                                               "holding one)")
        try:
            return cls(model, meta, flip, stages, loc if localize else None, loc_meta if localize else None,
                       recrops, max_people=max_people)
        except ValueError as exc:
            raise DeepPoseError(path, str(exc)) from None

    @classmethod
    def from_export(cls, path: str | Path, flip: bool = False, stages: int | None = None, localize: bool = True,
                    recrops: int | None = None, threads: int = 0, max_people: int | None = None) -> Predictor:
        """A Predictor on ONNX Runtime from an export (`serve.export`; path: its .onnx or .json), `threads`
        intra-op threads (0: ONNX Runtime's choice)."""
        from deeppose.serve.export import read_export

        sidecar, meta, loc_meta = read_export(path)
        folder = Path(path).parent
        loc_file = folder / sidecar["localizer"]["file"] if localize and loc_meta is not None else None
        networks = OnnxNetworks(folder / sidecar["pose"]["file"], loc_file, stages, threads)
        try:
            return cls(None, meta, flip, stages, None, loc_meta if loc_file else None, recrops, networks=networks,
                       max_people=max_people)
        except ValueError as exc:
            raise DeepPoseError(path, str(exc)) from None

    def predict(self, image: np.ndarray | str | Path, box: Any | None = None) -> Prediction:
        """One RGB image (H, W, 3) uint8 (or grayscale, RGBA, PIL; or an image file's path, read as RGB) and an
        optional person box [x, y, w, h] -> its `Prediction`."""
        return self.predict_images([read_image(image) if isinstance(image, (str, Path)) else image], [box])[0]

    def predict_images(self, images: Sequence[Any], boxes: Sequence[Any] | None = None, batch_size: int = 32
                       ) -> list[Prediction]:
        """Predict RGB (H, W, 3) uint8 images (grayscale, RGBA and PIL images are converted: `images.as_rgb`). A
        given box [x, y, w, h] (pixels, from the top-left corner, as on the command line and in the JSON) is the
        one person of its image; else the finder finds everyone, every person's box re-cropped until it
        converges; without a finder the whole image is the box."""
        images = [as_rgb(im) for im in images]
        boxes = list(boxes) if boxes is not None else [None] * len(images)
        if len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes")
        jobs = self._find(images, [None if b is None else centred(b) for b in boxes], batch_size)
        return self._pose(images, jobs, batch_size)

    def _find(self, images: list[np.ndarray], boxes: list[np.ndarray | None], batch_size: int) -> list[_Job]:
        """Stage 1, find people: the pose jobs of every photo (its given box; its candidates that may score at
        least the threshold once posed, else its best candidate; else its whole image), best first."""
        given = [i for i, b in enumerate(boxes) if b is not None]
        free = [i for i, b in enumerate(boxes) if b is None]
        jobs: list[_Job] = []
        if given:
            bx = np.stack([checked_box(boxes[i], images[i].shape[1], images[i].shape[0]) for i in given])
            logits = self.finder.logits([images[i] for i in given], square_box(bx), batch_size) if self.finder \
                else [None] * len(given)
            jobs += [_Job(i, b, "given", None if z is None else float(z)) for i, b, z in zip(given, bx, logits)]
        if free and self.finder is None:
            jobs += [_Job(i, b, "image", None) for i, b in zip(free, whole_photos([images[i] for i in free]))]
        elif free:
            # the finder's logit from which a candidate reaches the threshold with full pose confidence
            rule = self.box_rule
            least = (np.log(self.threshold / (1 - self.threshold)) - rule.b) / rule.a if rule.a > 0 else -np.inf
            for i, people in zip(free, self.finder([images[i] for i in free], batch_size=batch_size)):
                chosen = [k for k in range(len(people)) if people.logits[k] >= least]
                jobs += [_Job(i, people.boxes[k], "found", float(people.logits[k])) for k in chosen or [0]]
        return jobs

    def _pose(self, images: list[np.ndarray], jobs: list[_Job], batch_size: int) -> list[Prediction]:
        """Stages 2 and 3: every job's pose in one batch, found boxes re-cropped until they converge, each person
        scored (`serve.detect.person_probability`: the finder's logit and the pose network's confidence), the same
        person found twice kept once; then each photo's `Prediction`."""
        pose = self.pose
        refined = [k for k, j in enumerate(jobs) if j.source == "found"]
        fixed = [k for k, j in enumerate(jobs) if j.source != "found"]
        people: list[Person | None] = [None] * len(jobs)
        for idx, recrops in ((fixed, 0), (refined, self.recrops)):
            if not idx:
                continue
            photos = [images[jobs[k].image] for k in idx]
            r = recrop_until_converged(lambda sub, b, photos=photos: pose([photos[s] for s in sub], b, batch_size),
                                       np.stack([jobs[k].box for k in idx]), recrops, self.tol,
                                       self.box_rule.box_scale)
            logits = [jobs[k].logit for k in idx]
            scores = [None] * len(idx) if logits[0] is None else person_probability(
                np.array(logits), r.confidence, self.box_rule.a, self.box_rule.b, self.box_rule.c)
            for n, k in enumerate(idx):
                score = None if scores[n] is None else float(scores[n])
                confidence = r.confidence[n] * score if score is not None else r.confidence[n]
                people[k] = Person(r.joints[n, -1], r.joints[n], confidence, np.array(corner_box(r.boxes[n])),
                                   jobs[k].source, score, int(r.iterations[n]))
        out = []
        for i in range(len(images)):
            mine = [p for j, p in zip(jobs, people) if j.image == i]
            scores = np.array([-1.0 if p.person_score is None else p.person_score for p in mine])
            mine = [mine[k] for k in suppress(np.stack([p.joints for p in mine]), scores)]
            found = [p for p in mine if p.person_score is None or p.person_score >= self.threshold]
            anyone = None if self.finder is None else bool(found)
            out.append(Prediction(found[: self.max_people], mine[0], anyone))
        return out

    def predict_dataset(self, dataset: PoseDataset, batch_size: int = 32, num_workers: int = 0,
                        progress: bool = True, all_stages: bool = False, with_confidence: bool = False
                        ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(N, K, 2) pixel predictions for every sample of a dataset in its own boxes (else whole images, no
        finder: the dataset's convention); (N, n, K, 2), every stage, with `all_stages`; with `with_confidence`,
        also the (N, K) confidences."""
        if dataset.skeleton.name != self.skeleton.name:
            raise ValueError(f"model predicts {self.skeleton.name} joints, dataset {dataset.name} has "
                             f"{dataset.skeleton.name}")
        run = self.pose.normalized if with_confidence else (lambda *x: self.pose.normalized(*x)[0])
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
