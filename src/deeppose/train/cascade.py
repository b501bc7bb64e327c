"""Training the DeepPose cascade stage by stage (Eq. 8): predict, fit displacement statistics, train stage s.

    train_cascade(cfg, "runs/cascade")   # stage 1 (or cfg.cascade.stage1), then stages 2..S

Run folder:
    stage1/            the stage-1 run (absent when cfg.cascade.stage1 names a trained checkpoint)
    stats_s{s}.json    N_i^(s-1): the displacement statistics stage s trains on
    stage{s}/          the run of refinement stage s (a normal resumable run: last.pt, best.pt, logs)
    cascade_s{s}.pt    the cascade of stages 1..s, written when stage s is done (a finished stage is skipped)
    cascade.pt         the whole cascade
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from deeppose.config import CascadeConfig, TrainConfig, to_dict
from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import CropDataset
from deeppose.errors import DeepPoseError
from deeppose.eval.metrics import pck, pcp
from deeppose.files import atomic_write, copy_file, write_json
from deeppose.geometry import diam
from deeppose.heads.base import head_output
from deeppose.heads.losses import masked_mean
from deeppose.models.cascade import Cascade, box_crops, refinement_stage, refinement_target
from deeppose.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint, ship_checkpoint
from deeppose.models.meta import CascadeGeometry, ModelMeta
from deeppose.skeleton import SKELETONS, Skeleton, get_skeleton
from deeppose.train import distributed
from deeppose.train.builders import architecture, build_datasets, build_network, loss_mask, make_objective
from deeppose.train.loop import fit
from deeppose.train.run import StageTask
from deeppose.train.simulation import DisplacementStats, fit_displacements, simulated_boxes


def as_cascade(path: str | Path, cfg: TrainConfig) -> tuple[Cascade, ModelMeta]:
    """Load a stage-1 or cascade checkpoint as a Cascade with the geometry of `cfg.cascade`.

    Returns:
        (cascade in eval mode, its cascade meta).
    """
    model, meta = model_from_checkpoint(path)
    c = cfg.cascade
    skeleton = get_skeleton(meta.skeleton)
    joints = refined_joints(c, skeleton)
    if meta.kind == "cascade":
        have = meta.cascade
        want = CascadeGeometry(c.sigma, c.crop_size, c.source_size, [skeleton.joints[j] for j in joints])
        if have != want:
            raise DeepPoseError(path, f"cascade has geometry {have}, the config {want}")
        return model, meta
    if meta.kind != "stage1":
        raise DeepPoseError(path, f"a cascade builds on a stage-1 or cascade checkpoint, not a {meta.kind}")
    cascade = Cascade(model, [], skeleton, c.sigma, c.crop_size, c.source_size, joints).eval()
    return cascade, cascade_meta(meta, [], c)


def refined_joints(c: CascadeConfig, skeleton: Skeleton) -> list[int]:
    """Indices of the joints `c.joints` names (all K when it is empty), in skeleton order."""
    if not c.joints:
        return list(range(skeleton.num_joints))
    try:
        return sorted({skeleton.index(name) for name in c.joints})
    except KeyError as e:
        raise DeepPoseError(None, f"config cascade.joints: {e.args[0]}") from None


def cascade_meta(stage1: ModelMeta, refiners: list[ModelMeta], c: CascadeConfig) -> ModelMeta:
    """The checkpoint meta of a cascade: the stage-1 meta, one entry per refinement stage, and the geometry."""
    skeleton = get_skeleton(stage1.skeleton)
    geometry = CascadeGeometry(c.sigma, c.crop_size, c.source_size,
                               [skeleton.joints[j] for j in refined_joints(c, skeleton)])
    return ModelMeta("cascade", stage1.skeleton, stage1.num_joints, stage1.input_size, cascade=geometry,
                     stage1=stage1, refiners=refiners)


@torch.inference_mode()
def stage_outputs(cascade: Cascade, dataset: PoseDataset, input_size: int, keep_sources: bool = False,
                  batch_size: int = 64, num_workers: int = 0, progress: bool = True
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor | None]:
    """Run a cascade over the plain crops of a dataset, in the box-normalized frame.

    Returns:
        pred (N, n, K, 2) every stage's joints; gt (N, K, 2); labelled (N, K) bool; the sources
        (N, 3, R, R) uint8 when `keep_sources`.
    """
    cascade.eval()
    loader = DataLoader(CropDataset(dataset, input_size, source_size=cascade.source_size), batch_size=batch_size,
                        num_workers=num_workers, generator=torch.Generator())
    pred, gt, labelled, sources = [], [], [], []
    for batch in tqdm(loader, desc="stage outputs", disable=not progress, unit="batch"):
        pred.append(cascade(batch["image"], batch["source"]).numpy())
        gt.append(batch["joints"].numpy())
        labelled.append(batch["labelled"].numpy())
        if keep_sources:
            sources.append(batch["source"])
    return (np.concatenate(pred).astype(np.float64), np.concatenate(gt).astype(np.float64), np.concatenate(labelled),
            torch.cat(sources) if keep_sources else None)


def stage_config(cfg: TrainConfig) -> TrainConfig:
    """The TrainConfig a refinement stage's run uses: the cascade's model, optimizer, loss and budget."""
    c = cfg.cascade
    return replace(cfg, model=c.model, optim=c.optim, loss=c.loss, heatmap=c.heatmap, epochs=c.epochs,
                   max_minutes=c.max_minutes)


def refinement_task(cfg: TrainConfig, train: PoseDataset, val: PoseDataset, previous: Cascade, stats: DisplacementStats,
                    stage: int) -> StageTask:
    """Stage s >= 2 as a `fit` task: a network on joint sub-images, trained on simulated boxes (Eq. 8).

    Each step draws `draws` boxes per joint per image around the true joints of the (augmented) sources,
    cuts them in one batched warp and regresses the true joint inside each box (Eq. 6). Validation refines
    the previous stages' real predictions on the validation images.
    """
    c = cfg.cascade
    skeleton, k = train.skeleton, train.skeleton.num_joints
    joints = torch.tensor(refined_joints(c, skeleton))
    n = len(joints)
    model = build_network(c.model, k, c.crop_size)
    objective = make_objective(cfg, c.model, c.loss, c.heatmap, "cascade.loss")
    val_pred, val_gt, val_labelled, val_sources = stage_outputs(previous, val, previous.stage1.input_size,
                                                                keep_sources=True, progress=False)

    def loss(item: dict[str, Any]) -> torch.Tensor:
        # joints the augmentation pushed out of the source have no pixels around them to refine on
        y, mask = item["joints"], loss_mask(cfg, item) & (item["joints"].abs() <= 0.5).all(-1)
        d = diam(y, item["labelled"], skeleton)
        ok = torch.isfinite(d) & (d > 0)
        y, mask, d, sources = y[ok], mask[ok], d[ok], item["image"][ok]
        on = joints.to(y.device)
        boxes = simulated_boxes(y, d, stats, c.sigma, c.draws)[:, :, on]  # (B, D, J, 4)
        b = len(y)
        crops = box_crops(sources, boxes.reshape(b, c.draws * n, 4), c.crop_size)
        if c.model.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        out = head_output(model, crops).select(on.repeat(b * c.draws))  # the crop of joint i reads output i
        target = refinement_target(y[:, None, on], boxes)
        mask = mask[:, None, on].expand(b, c.draws, n)
        if c.inside_only:
            mask = mask & (target.abs() <= 0.5).all(-1)
        return masked_mean(objective(out, target.reshape(-1, 1, 2)).view(b, c.draws, n), mask)

    @torch.inference_mode()
    def validate() -> dict[str, float]:
        model.eval()
        device = next(model.parameters()).device
        prev = torch.from_numpy(val_pred[:, -1]).float().to(device)
        out = torch.cat([refinement_stage(model, val_sources[i:i + 64].to(device), prev[i:i + 64], skeleton, c.sigma,
                                          c.crop_size, joints.to(device))
                         for i in range(0, len(prev), 64)]).double().cpu().numpy()
        model.train()
        return {"val_pck": pck(out, val_gt, val_labelled, skeleton, cfg.val_alpha),
                "val_pcp": pcp(out, val_gt, val_labelled, skeleton)["mean"]}

    geometry = CascadeGeometry(c.sigma, c.crop_size, c.source_size, [skeleton.joints[j] for j in joints.tolist()])
    meta = ModelMeta("refiner", skeleton.name, k, c.crop_size, model=c.model, cascade=geometry, provenance={
        "stage": stage, "stats": stats.to_dict(), "config": to_dict(cfg),
        "previous_val_pck": pck(val_pred[:, -1], val_gt, val_labelled, skeleton, cfg.val_alpha)})
    crops = CropDataset(train, c.source_size, cfg.data.augment, seed=cfg.seed)
    return StageTask(model, crops, loss, validate, meta)


def displacement_stats(previous: Cascade, cfg: TrainConfig, out: Path, stage: int, progress: bool
                       ) -> DisplacementStats:
    """N_i^(s-1), fitted on the previous stages' predictions on the training images.

    The predictions are kept in out/outputs_s{s-1}.npz and the statistics in out/stats_s{s}.json (with the
    quantile they were fitted at), so a resumed or re-configured run does not predict again.
    """
    stats_path, outputs_path = out / f"stats_s{stage}.json", out / f"outputs_s{stage - 1}.npz"
    q = cfg.cascade.stats_quantile
    if stats_path.is_file():
        cached = json.loads(stats_path.read_text())
        if cached.get("quantile") == q:
            return DisplacementStats.from_dict(cached["stats"])
    train, _ = build_datasets(cfg.data, cfg.seed)
    if outputs_path.is_file():
        with np.load(outputs_path) as f:
            pred, gt, labelled = f["pred"], f["gt"], f["labelled"]
    else:
        pred, gt, labelled, _ = stage_outputs(previous, train, previous.stage1.input_size,
                                              num_workers=cfg.data.num_workers, progress=progress)
        pred = pred[:, -1]
        atomic_write(outputs_path, lambda tmp: np.savez(tmp, pred=pred, gt=gt, labelled=labelled))
    if len(pred) != len(train):
        raise DeepPoseError(outputs_path, f"holds {len(pred)} predictions for {len(train)} training images; delete it")
    stats = fit_displacements(pred, gt, labelled, train.skeleton, q)
    train_pck = pck(pred, gt, labelled, train.skeleton, cfg.val_alpha)
    write_json(stats_path, {"stage": stage, "n_images": len(train), "quantile": q, "train_pck": train_pck,
                            "stats": stats.to_dict()})
    print(f"stage {stage - 1} on the {len(train)} training images: PCK@{cfg.val_alpha:g} {train_pck:.3f}; "
          f"displacement statistics (units of diam(y), fitted on the errors up to their {q:g} quantile) for "
          f"stage {stage}:\n{stats.format(train.skeleton.joints)}", flush=True)
    return stats


def assemble(previous: Cascade, previous_meta: ModelMeta, stage: Path, cfg: TrainConfig) -> tuple[Cascade, ModelMeta]:
    """The previous cascade plus the refinement stage in the checkpoint `stage` (its run's best.pt)."""
    ckpt = load_checkpoint(stage)
    m = ckpt["meta"]
    refiner = build_network(architecture(cfg.cascade.model), m.num_joints, m.cascade.crop_size)
    refiner.load_state_dict(ckpt["model"], strict=True)
    cascade = Cascade(previous.stage1, [*previous.refiners, refiner], previous.skeleton, previous.sigma,
                      previous.crop_size, previous.source_size, previous.joints).eval()
    kept = ("stage", "stats", "best_val_pck", "previous_val_pck", "train_seconds", "n_parameters")
    entry = dataclasses.replace(m, provenance={k: v for k, v in m.provenance.items() if k in kept})
    return cascade, cascade_meta(previous_meta.stage1, [*previous_meta.refiners, entry], cfg.cascade)


def train_cascade(cfg: TrainConfig, out: str | Path, resume: bool = False, upto_stage: int | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Train the cascade of `cfg.cascade.stages` stages into `out`, one stage after the other.

    Stage 1 comes from `cfg.cascade.stage1` or is trained first (out/stage1). For each s >= 2: the cascade of
    stages 1..s-1 predicts the training images, the per-joint displacement Normals are fitted and printed
    (Eq. 8), stage s trains on boxes drawn from them, and out/cascade_s{s}.pt is written. Finished stages are
    skipped, so the same command continues an interrupted cascade (with `resume` for a stage cut off mid-run).

    Args:
        upto_stage: stop after this stage (train one stage at a time); default all.

    Returns:
        {"stages": n trained so far, "cascade": path of the newest cascade checkpoint, "val_pck": per stage}.
    """
    out = Path(out)
    c = cfg.cascade
    last = min(c.stages, upto_stage or c.stages)
    if c.stages < 2:
        raise DeepPoseError(None, "config cascade.stages must be at least 2 for a cascade (1: train stage 1 alone)")
    known = {name for skeleton in SKELETONS.values() for name in skeleton.joints}
    if unknown := [name for name in c.joints if name not in known]:
        raise DeepPoseError(None, f"config cascade.joints: no skeleton has a joint named {', '.join(unknown)}")
    out.mkdir(parents=True, exist_ok=True)
    w = distributed.world()  # under torchrun: every process trains, rank 0 writes (the others wait for it)
    stage1_path = Path(c.stage1) if c.stage1 else out / "stage1" / "best.pt"
    if not c.stage1 and not (out / "cascade_s1.pt").is_file():
        s1 = out / "stage1"
        result = fit(cfg, s1, resume=resume and (s1 / "last.pt").is_file(), progress=progress)
        if result.best is None:
            raise DeepPoseError(s1, "stage 1 ended without a validated checkpoint (best.pt); train longer")
        distributed.on_main(w, lambda: ship_checkpoint(result.best, out / "cascade_s1.pt", half=False))
    if not c.stage1:
        stage1_path = out / "cascade_s1.pt"
    cascade, meta = as_cascade(stage1_path, cfg)
    val_pck = [meta.stage1.provenance.get("best_val_pck")]
    for s in range(2, last + 1):
        done = out / f"cascade_s{s}.pt"
        if done.is_file():
            cascade, meta = as_cascade(done, cfg)
            val_pck.append(meta.refiners[-1].provenance.get("best_val_pck"))
            continue
        stats = distributed.on_main(w, partial(displacement_stats, cascade, cfg, out, s, progress))
        stage_dir = out / f"stage{s}"
        result = fit(stage_config(cfg), stage_dir, resume=resume and (stage_dir / "last.pt").is_file(),
                     progress=progress, make_task=partial(refinement_task, previous=cascade, stats=stats, stage=s))
        if result.best is None:
            raise DeepPoseError(stage_dir, f"stage {s} ended without a validated checkpoint (best.pt); train longer")
        cascade, meta = assemble(cascade, meta, result.best, cfg)
        distributed.on_main(w, partial(save_checkpoint, done, cascade, meta))
        val_pck.append(meta.refiners[-1].provenance.get("best_val_pck"))
        print(f"stage {s}: validation PCK@{cfg.val_alpha:g} {val_pck[-2]:.4f} -> {val_pck[-1]:.4f}", flush=True)
    newest = out / f"cascade_s{cascade.num_stages}.pt" if cascade.num_stages > 1 else stage1_path
    if cascade.num_stages == c.stages:
        distributed.on_main(w, partial(copy_file, newest, out / "cascade.pt"))
    return {"stages": cascade.num_stages, "cascade": str(newest), "val_pck": val_pck}
