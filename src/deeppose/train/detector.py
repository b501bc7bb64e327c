"""Training the person detector on mosaics of photos of people and photos with nobody, resumable, selected on
validation photos that no network trained on.

Splits: the photos of people are the localizer's (`train.localizer.whole_image_splits`: LSP train, and LSPET with
its 500 held-out val photos left out); the photos with nobody are `data/negatives/train`, `negatives_val_size` of
them (by a permutation of the seed) held out for validation and calibration. `data/negatives/test` is never read
here.

Loss (CenterNet, Zhou et al. 2019): the penalty-reduced focal loss on the centre heatmap (`centre_loss`, their
Eq. 1) plus `offset_weight` x the L1 loss of the joints' offsets at each annotated person's centre cell
(`offset_loss`). Selection: `validate_detector`'s "score".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeppose.config import ModelConfig, OptimConfig, build_config
from deeppose.data.io import read_image
from deeppose.data.mosaic import Mosaic, MosaicDataset
from deeppose.data.sample import PoseDataset
from deeppose.errors import DeepPoseError
from deeppose.models.checkpoint import init_from_checkpoint, model_from_checkpoint
from deeppose.models.detector import PersonDetector
from deeppose.models.factory import create_model
from deeppose.models.meta import BoxRule, ModelMeta
from deeppose.paths import data_root
from deeppose.serve.detect import read_people
from deeppose.serve.finder import whole_photos
from deeppose.serve.localize import person_in_box
from deeppose.serve.pose import crop_boxes
from deeppose.train.localizer import whole_image_splits
from deeppose.train.loop import FitResult, check_run_folder, run_task
from deeppose.train.run import Schedule, StageTask

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class DetectorConfig:
    """A detector training run.

    Attributes:
        init: a detector checkpoint to start from (`deeppose import-tflite --detector` writes MoveNet's); "" starts
            from `model`'s backbone weights with new branches.
        model: the backbone and pyramid (head "movenet").
        root: folder holding lsp/, lspet/ and negatives/ ("" -> $DEEPPOSE_DATA).
        lsp_val_size, lspet_val_size: the photos-of-people carve-outs (`whole_image_splits`).
        negatives_val_size: photos with nobody held out of negatives/train.
        input_size: the canvas side (a multiple of 12).
        mosaic: how canvases are drawn.
        offset_weight: weight of the offsets' L1 loss next to the centre focal loss.
        ignore_above: in tiles of photos of people, a cell the current detector scores above this probability
            and no annotated person is centred near (heat below 0.1) is not background (an unannotated person).
        teacher: a detector checkpoint (e.g. MoveNet's, imported) whose frozen centre map also marks, in tiles of
            photos of people, where unannotated people may be: cells it scores above `teacher_above` ("": none).
        teacher_above: the teacher's probability from which a cell may hold an unannotated person.
        hard_negatives: a file of mined photos with nobody (`deeppose detector mine`: each training photo's
            strongest centre probability under an earlier detector); "" draws them uniformly.
        hard_share: with `hard_negatives`, the share of nobody tiles drawn in proportion to that probability (the
            rest uniformly): the photos the detector took for people come back more often.
        optim, epochs, max_minutes, checkpoint_minutes, num_workers, seed, device, precision: as
            `LocalizerConfig`'s.
    """

    init: str = "runs/weights/movenet_detector.pt"
    model: ModelConfig = field(default_factory=lambda: ModelConfig(arch="mobilenet_v2", head="movenet", stride=4,
                                                                   padding="tf_same", freeze_bn=True, dropout=0.0))
    root: str = ""
    lsp_val_size: int = 200
    lspet_val_size: int = 500
    negatives_val_size: int = 150
    input_size: int = 192
    mosaic: Mosaic = field(default_factory=Mosaic)
    offset_weight: float = 0.25
    ignore_above: float = 0.3
    teacher: str = ""
    teacher_above: float = 0.1
    hard_negatives: str = ""
    hard_share: float = 0.5
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, batch_size=32, warmup_steps=50,
                                                                   backbone_lr=0.1))
    epochs: float = 4.0
    max_minutes: float = 60.0
    checkpoint_minutes: float = 5.0
    num_workers: int = 1
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"


def detector_config(data: dict[str, Any]) -> DetectorConfig:
    """A DetectorConfig from defaults and a nested dict of settings, types checked (`config.build_config`)."""
    return build_config(DetectorConfig, data)


def nobody_photos(folder: Path) -> list[Path]:
    """The image files of a folder of photos with nobody in them, sorted; DeepPoseError when there are none."""
    if not folder.is_dir():
        raise DeepPoseError(folder, "folder of photos with nobody in them not found")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise DeepPoseError(folder, "no photos (jpg, png, bmp, webp) in the folder of photos with nobody in them")
    return photos


def detector_splits(root: Path, seed: int = 0, lsp_val_size: int = 200, lspet_val_size: int = 500,
                    negatives_val_size: int = 150) -> tuple[dict[str, PoseDataset], dict[str, list[Path]]]:
    """(photos of people: `whole_image_splits`; photos with nobody: {"train", "val"} of negatives/train)."""
    people = whole_image_splits(root, seed, lsp_val_size, lspet_val_size)
    photos = nobody_photos(root / "negatives" / "train")
    if not 0 < negatives_val_size < len(photos):
        raise DeepPoseError(root / "negatives" / "train", f"negatives_val_size {negatives_val_size} must be in "
                                                          f"1..{len(photos) - 1}")
    order = np.random.default_rng(seed).permutation(len(photos))
    val = set(order[:negatives_val_size].tolist())
    return people, {"train": [p for i, p in enumerate(photos) if i not in val],
                    "val": [p for i, p in enumerate(photos) if i in val]}


def centre_loss(logits: torch.Tensor, heat: torch.Tensor, may_hold_people: torch.Tensor, ignore_above: float,
                seen: torch.Tensor | None = None, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on the centre heatmap (Zhou et al. 2019, Eq. 1), normalized by the
    number of centres; cells of photos of people that the detector already scores above `ignore_above`, or that a
    teacher sees a person at (`seen`), away from any annotated centre (heat < 0.1), are left out of the background
    term (unannotated people).

    Args:
        logits: (B, 1, G, G); heat: (B, G, G) targets (1 at centres); may_hold_people, seen: (B, G, G) bool.
    """
    z = logits[:, 0].float()
    p = torch.sigmoid(z)
    centre = heat >= 1.0 - 1e-6
    log_p, log_not_p = torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)
    positive = ((1 - p) ** alpha * log_p)[centre].sum()
    confident = p.detach() > ignore_above
    if seen is not None:
        confident = confident | seen
    unannotated = may_hold_people & confident & (heat < 0.1)
    background = ((1 - heat) ** beta * p ** alpha * log_not_p)[~centre & ~unannotated].sum()
    return -(positive + background) / centre.sum().clamp(min=1)


def offset_loss(offsets: torch.Tensor, cells: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                present: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance (cells) between the predicted and annotated offsets of the labelled joints, read at each
    annotated person's centre cell.

    Args:
        offsets: (B, 2K, G, G); cells: (B, P, 2) (column, row); target: (B, P, K, 2); weight: (B, P, K) bool;
            present: (B, P) bool.
    """
    b, p = cells.shape[:2]
    k = target.shape[2]
    batch = torch.arange(b, device=offsets.device)[:, None].expand(b, p)
    picked = offsets[batch, :, cells[..., 1], cells[..., 0]].float().reshape(b, p, k, 2)
    mask = (weight & present[..., None]).float()
    return ((picked - target).abs().sum(-1) * mask).sum() / mask.sum().clamp(min=1)


def detector_and_splits(checkpoint: str | Path, root: str | Path | None
                        ) -> tuple[PersonDetector, ModelMeta, dict[str, PoseDataset], dict[str, list[Path]]]:
    """A detector checkpoint's model and meta, and the held-out splits of its training run (`detector_splits`;
    an imported detector, which has no run, gets the default splits); DeepPoseError when it is not a detector."""
    model, meta = model_from_checkpoint(checkpoint)
    if meta.kind != "detector":
        raise DeepPoseError(checkpoint, "not a person detector checkpoint")
    cfg = detector_config(meta.provenance.get("config", {}))
    people, nobody = detector_splits(Path(root) if root else data_root(), cfg.seed, cfg.lsp_val_size,
                                     cfg.lspet_val_size, cfg.negatives_val_size)
    return model, meta, people, nobody


def detector_meta(cfg: DetectorConfig, skeleton: str, num_joints: int) -> ModelMeta:
    """What a detector checkpoint says about its model: the architecture, the box rule (uncalibrated) and the
    run's config as provenance."""
    return ModelMeta("detector", skeleton, num_joints, cfg.input_size,
                     model=replace(cfg.model, init="", backbone_weights=""),
                     box_rule=BoxRule(cfg.mosaic.zoom.box_scale),
                     provenance={"config": json.loads(json.dumps(asdict(cfg)))})


@torch.inference_mode()
def detector_maps(model: PersonDetector, images: list[np.ndarray], batch_size: int = 32
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector on whole photos: ((N, G, G) centre logits, (N, 2K, G, G) offsets, (N, 2, 3) affines)."""
    model.eval()
    device = next(model.parameters()).device
    logits, offsets, affines = [], [], []
    for lo in range(0, len(images), batch_size):
        chunk = images[lo:lo + batch_size]
        x, affine = crop_boxes(chunk, whole_photos(chunk), model.input_size)  # the squared photos, as served
        z, d = model(x.to(device))
        logits.append(z[:, 0].float().cpu().numpy())
        offsets.append(d.float().cpu().numpy())
        affines.append(affine.numpy())
    return np.concatenate(logits), np.concatenate(offsets), np.concatenate(affines)


def validate_detector(model: PersonDetector, people: PoseDataset, nobody: list[Path], box_scale: float = 1.33
                      ) -> dict[str, float]:
    """On whole held-out photos, at the uncalibrated probability 0.5: "recall" (photos of people whose annotated
    person has a box holding it, `localize.person_in_box`), "false_positives" (photos with nobody where someone
    is found) and their balance "score" = (recall + 1 - false_positives) / 2."""
    found = []
    for lo in range(0, len(people), 100):
        samples = people.samples[lo:lo + 100]
        z, d, a = detector_maps(model, [read_image(s.image_path) for s in samples])
        for s, zi, di, ai in zip(samples, z, d, a):
            p = read_people(zi, di, ai, 1.0, 0.0, model.stride, box_scale, floor=0.5)
            found.append(bool(len(p)) and bool(person_in_box(p.boxes, np.repeat(s.joints[None], len(p), 0),
                                                              np.repeat(s.labelled[None], len(p), 0)).any()))
    z, _, _ = detector_maps(model, [read_image(p) for p in nobody])
    false_positives = float((z.reshape(len(z), -1).max(axis=1) >= 0.0).mean())
    recall = float(np.mean(found))
    model.train()
    return {"recall": recall, "false_positives": false_positives, "score": (recall + 1 - false_positives) / 2}


def detector_task(cfg: DetectorConfig, people: dict[str, PoseDataset], nobody: dict[str, list[Path]]) -> StageTask:
    """The detector as a training task: mosaics of the training photos, `centre_loss` + `offset_weight` x
    `offset_loss`, selected on `validate_detector`'s "score" over LSPET val and the held-out photos with nobody.
    Seed torch first (new layers' initialization)."""
    train = PoseDataset("lsp+lspet", people["lsp_train"].root, "train", people["lsp_train"].skeleton,
                        people["lsp_train"].samples + people["lspet_train"].samples)
    model = PersonDetector(create_model(cfg.model, train.skeleton.num_joints, cfg.input_size))
    if cfg.init:
        init_from_checkpoint(model, cfg.init)
    teacher = None
    if cfg.teacher:
        teacher, teacher_meta = model_from_checkpoint(cfg.teacher)
        if teacher_meta.kind != "detector" or teacher_meta.input_size != cfg.input_size:
            raise DeepPoseError(cfg.teacher, f"the teacher must be a person detector at {cfg.input_size} px")
        teacher.requires_grad_(False)

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z, d = model(batch["image"])
        seen = None
        if teacher is not None:
            with torch.no_grad():
                seen = torch.sigmoid(teacher.to(z.device).eval()(batch["image"])[0][:, 0].float()) > cfg.teacher_above
        return (centre_loss(z, batch["heat"], batch["may_hold_people"], cfg.ignore_above, seen)
                + cfg.offset_weight * offset_loss(d, batch["cells"], batch["offsets"], batch["weight"],
                                                  batch["present"]))

    def validate() -> dict[str, float]:
        return validate_detector(model, people["lspet_val"], nobody["val"], cfg.mosaic.zoom.box_scale)

    weights = mined_weights(Path(cfg.hard_negatives), nobody["train"], cfg.hard_share) if cfg.hard_negatives else None
    return StageTask(model, MosaicDataset(train, nobody["train"], cfg.input_size, cfg.mosaic, cfg.seed, weights), loss,
                     validate, detector_meta(cfg, train.skeleton.name, train.skeleton.num_joints), select="score")


def train_detector(cfg: DetectorConfig, out: str | Path, resume: bool = False, progress: bool = False,
                   stop_after_steps: int = 0, splits: tuple[dict[str, PoseDataset], dict[str, list[Path]]] | None = None
                   ) -> FitResult:
    """Train the detector into `out` with the training loop (`train.loop.run_task`: config.json, last.pt,
    best.pt, train_log.csv, val_log.csv); resumable with `resume`. `splits` replaces `detector_splits` (tests)."""
    out = Path(out)
    schedule = Schedule(cfg.epochs, cfg.optim, cfg.seed, cfg.num_workers, cfg.max_minutes, cfg.checkpoint_minutes,
                        cfg.device, cfg.precision)
    check_run_folder(out, resume, cfg.epochs)
    root = Path(cfg.root) if cfg.root else data_root()
    people, nobody = splits or detector_splits(root, cfg.seed, cfg.lsp_val_size, cfg.lspet_val_size,
                                               cfg.negatives_val_size)
    torch.manual_seed(cfg.seed)
    return run_task(detector_task(cfg, people, nobody), schedule, out, resume, stop_after_steps, progress)


def mine_hard_negatives(checkpoint: str | Path, out: str | Path, root: str | Path | None = None) -> dict[str, Any]:
    """Hard-negative mining: score every training photo with nobody in it (`detector_splits`' "train" half of
    data/negatives/train; the held-out ones never) by a detector's strongest centre probability, and write
    {"detector", "photos": {file name: probability}} to `out` (JSON), for `DetectorConfig.hard_negatives`.

    Returns:
        {"n", "mean", "above_0.5"}: how many photos, their mean probability, the share a person is found in.
    """
    from deeppose.files import write_json

    model, _, _, nobody = detector_and_splits(checkpoint, root)
    scores = []
    for lo in range(0, len(nobody["train"]), 100):
        z, _, _ = detector_maps(model, [read_image(p) for p in nobody["train"][lo:lo + 100]])
        scores += (1 / (1 + np.exp(-z.reshape(len(z), -1).max(axis=1)))).tolist()
    write_json(out, {"detector": Path(checkpoint).name,
                     "photos": {p.name: round(float(s), 5) for p, s in zip(nobody["train"], scores)}})
    return {"n": len(scores), "mean": float(np.mean(scores)), "above_0.5": float(np.mean(np.array(scores) >= 0.5))}


def mined_weights(path: Path, photos: list[Path], hard_share: float) -> np.ndarray:
    """(len(photos),) drawing weights from a mining file: `hard_share` of the draws in proportion to each photo's
    mined probability, the rest uniform; DeepPoseError naming the file when it does not cover the photos."""
    from deeppose.data.io import load_json

    mined = load_json(path)
    scores = mined.get("photos") if isinstance(mined, dict) else None
    if not isinstance(scores, dict) or any(p.name not in scores for p in photos):
        raise DeepPoseError(path, "not a mining file of these photos (deeppose detector mine writes one)")
    if not 0 <= hard_share <= 1:
        raise DeepPoseError(path, f"hard_share {hard_share} is not a fraction in [0, 1]")
    s = np.array([float(scores[p.name]) for p in photos])
    return hard_share * s / max(s.sum(), 1e-12) + (1 - hard_share) / len(photos)
