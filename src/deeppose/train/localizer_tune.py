"""After a localizer is trained: calibrate its person score, choose its box rule, refit its presence layer.

Each reads a localizer checkpoint and writes another (`deeppose localizer calibrate|tune|refit-presence`); the
data are the training run's own splits (`train.localizer.whole_image_splits`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset
from deeppose.data.whole_image import WholeImageDataset, ZoomOut
from deeppose.errors import DeepPoseError
from deeppose.eval.boxes import matched_person
from deeppose.eval.metrics import pck
from deeppose.models.checkpoint import model_from_checkpoint, save_checkpoint
from deeppose.models.localizer import PersonLocalizer
from deeppose.models.meta import BoxRule, ModelMeta
from deeppose.paths import data_root
from deeppose.serve.localize import FOUND_THRESHOLD, calibrate_presence, presence_probability
from deeppose.serve.predictor import Predictor
from deeppose.train.localizer import LocalizerConfig, localizer_config, localizer_outputs, whole_image_splits


def nobody_views(dataset: PoseDataset, input_size: int, zoom: ZoomOut, seed: int) -> WholeImageDataset:
    """Views with nobody in them (regions clear of the person, synthetic backgrounds) of every photo of
    `dataset`, drawn with `seed`: the negatives of calibration and of the no-person benchmark."""
    return WholeImageDataset(dataset, input_size, replace(zoom, negative_prob=1.0), seed)


def localizer_and_splits(checkpoint: str | Path, root: str | Path | None
                         ) -> tuple[PersonLocalizer, ModelMeta, LocalizerConfig, dict[str, PoseDataset]]:
    """A localizer checkpoint's model, meta, training config and the data splits of its training run
    (`whole_image_splits`); DeepPoseError when the file is not a localizer."""
    model, meta = model_from_checkpoint(checkpoint)
    if meta.kind != "localizer":
        raise DeepPoseError(checkpoint, "not a person localizer checkpoint")
    cfg = localizer_config(meta.provenance["config"])
    splits = whole_image_splits(Path(root) if root else data_root(), cfg.seed, cfg.lsp_val_size, cfg.lspet_val_size)
    return model, meta, cfg, splits


def calibrate_localizer(checkpoint: str | Path, out: str | Path, root: str | Path | None = None,
                        progress: bool = False) -> dict[str, Any]:
    """Fit the presence logit's Platt scaling on the validation photos (positives: LSP val and LSPET val whole
    images; negatives: one nobody view of each) and write the localizer with it to `out`.

    Returns:
        the calibration {"a", "b", "n_positive", "n_negative", "val_error_positive", "val_error_negative"}.
    """

    model, meta, cfg, splits = localizer_and_splits(checkpoint, root)
    logits, labels = [], []
    for name in ("lsp_val", "lspet_val"):
        for data in (WholeImageDataset(splits[name], meta.input_size),
                     nobody_views(splits[name], meta.input_size, cfg.zoom, cfg.seed + 1000)):
            _, logit, label = localizer_outputs(model, data, progress=progress)
            logits.append(logit)
            labels.append(label)
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    cal = calibrate_presence(logits, labels)
    found = presence_probability(logits, cal["a"], cal["b"]) >= FOUND_THRESHOLD
    cal["val_error_positive"] = float((~found[labels == 1]).mean())
    cal["val_error_negative"] = float(found[labels == 0].mean())
    box_rule = replace(meta.box_rule or BoxRule(), a=cal["a"], b=cal["b"])
    save_checkpoint(out, model, replace(meta, box_rule=box_rule).with_provenance(calibration=cal))
    return cal


def tune_box_rule(localizer: str | Path, pose: str | Path, out: str | Path,
                  scales: tuple[float, ...] = (1.2, 1.33, 1.5), recrops: tuple[int, ...] = (0, 1, 2),
                  root: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Choose the localizer's box rule (`choose_box_rule`) on its training run's validation photos and write it
    into the localizer checkpoint `out`."""
    model, meta, _, splits = localizer_and_splits(localizer, root)
    return choose_box_rule(model, meta, pose, splits, out, scales, recrops, progress)


def choose_box_rule(finder: nn.Module, meta: ModelMeta, pose: str | Path, splits: dict[str, PoseDataset],
                    out: str | Path, scales: tuple[float, ...] = (1.2, 1.33, 1.5),
                    recrops: tuple[int, ...] = (0, 1, 2), progress: bool = False) -> dict[str, Any]:
    """Choose a finder's (localizer's or detector's) box-rule scale and number of re-crops on the validation
    photos (splits "lsp_val" and "lspet_val", whole images, people found by `finder` in front of the `pose` model;
    each annotated person scored on the person found that they are, `eval.boxes.matched_person`): the pair with the
    best mean PCK@0.2 of the two is written into the finder's checkpoint `out` (its box rule's box_scale and
    recrops).

    Returns:
        {"rows": [{"box_scale", "recrops", "lsp_val_pck", "lspet_val_pck", "score"}...], "best": row}.
    """
    pose_model, pose_meta = model_from_checkpoint(pose)
    images = {name: [read_image(s.image_path) for s in splits[name].samples] for name in ("lsp_val", "lspet_val")}
    rule = meta.box_rule or BoxRule()
    rows = []
    for scale in tqdm(scales, desc="box scales", disable=not progress):
        for n in recrops:
            candidate = replace(meta, box_rule=replace(rule, box_scale=scale))
            predictor = Predictor(pose_model, pose_meta, localizer=finder, localizer_meta=candidate, recrops=n)
            row: dict[str, Any] = {"box_scale": scale, "recrops": n}
            for name, ims in images.items():
                ds = splits[name]
                pred = np.stack([matched_person(r, s).joints for r, s in zip(predictor.predict_images(ims),
                                                                              ds.samples)])
                row[f"{name}_pck"] = round(pck(pred, ds.joints(), ds.labelled(), ds.skeleton), 4)
            row["score"] = round((row["lsp_val_pck"] + row["lspet_val_pck"]) / 2, 4)
            rows.append(row)
            print(f"box scale {scale:g}, {n} re-crops: {row}", flush=True)
    best = max(rows, key=lambda r: r["score"])
    box_rule = replace(rule, box_scale=best["box_scale"], recrops=best["recrops"])
    save_checkpoint(out, finder, replace(meta, box_rule=box_rule).with_provenance(
        box_rule_selection={"pose": Path(pose).name, "rows": rows}))
    return {"rows": rows, "best": best}


@torch.inference_mode()
def pooled_features(model: PersonLocalizer, dataset: WholeImageDataset, progress: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """((N, 2C) the features the presence layer reads, (N,) presence labels) of every item of `dataset`."""
    model.eval()
    features, labels = [], []
    for batch in tqdm(DataLoader(dataset, batch_size=32, num_workers=0, generator=torch.Generator()),
                      desc="features", disable=not progress, unit="batch"):
        features.append(model.output_and_pooled(batch["image"])[1].numpy())
        labels.append(batch["presence"].numpy())
    return np.concatenate(features), np.concatenate(labels)


def refit_presence(checkpoint: str | Path, out: str | Path, n_views: int = 4000, weight_decay: float = 1e-3,
                   root: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Refit the presence layer alone (a logistic regression on the frozen pooled features, L2 `weight_decay`,
    both classes weighted equally) on `n_views` training views drawn with the localizer's zoom settings, the
    nobody views included (letterboxed ones too); the joints are untouched. Writes the localizer to `out`
    (calibrate it afterwards).

    Returns:
        {"n_views", "n_negative", "train_error"}.
    """
    model, meta, cfg, splits = localizer_and_splits(checkpoint, root)
    train = PoseDataset("lsp+lspet", splits["lsp_train"].root, "train", splits["lsp_train"].skeleton,
                        splits["lsp_train"].samples + splits["lspet_train"].samples)
    zoom = replace(cfg.zoom, negative_prob=0.5, letterbox_prob=0.5)
    picks = np.random.default_rng([cfg.seed, 17]).choice(len(train), min(n_views, len(train)), replace=False)
    x, y = pooled_features(model, WholeImageDataset(train.subset(np.sort(picks), "train"), meta.input_size, zoom,
                                                    cfg.seed + 2000), progress)
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    weight = torch.where(yt > 0.5, 0.5 / yt.sum(), 0.5 / (1 - yt).sum())
    layer = model.presence
    w = torch.cat([layer.weight.detach()[0], layer.bias.detach()]).double().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = xt @ w[:-1] + w[-1]
        loss = (weight * nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="none")).sum()
        loss = loss + weight_decay * w[:-1].pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        layer.weight.copy_(w[:-1].float()[None])
        layer.bias.copy_(w[-1:].float())
        error = float(((xt @ w[:-1] + w[-1] > 0).double() != yt).double().mean())
    result = {"n_views": len(y), "n_negative": int((y == 0).sum()), "train_error": error,
              "weight_decay": weight_decay}
    save_checkpoint(out, model, meta.with_provenance(presence_refit=result))
    return result
