"""Stage 1 as a `fit` task: crops of the person box -> K box-normalized joints (DeepPose Eq. 2-4)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deeppose.config import TrainConfig, to_dict
from deeppose.data.sample import PoseDataset
from deeppose.data.torch_dataset import CropDataset
from deeppose.eval.metrics import pck, pcp
from deeppose.heads import head_output
from deeppose.heads.losses import masked_mean
from deeppose.models.meta import ModelMeta
from deeppose.serve.batch import predict_dataset
from deeppose.train.builders import build_model, loss_mask, make_objective
from deeppose.train.run import StageTask


def stage1_meta(cfg: TrainConfig, num_joints: int, skeleton: str) -> ModelMeta:
    """What a stage-1 checkpoint says about its model: the architecture, and the run's config as provenance."""
    return ModelMeta("stage1", skeleton, num_joints, cfg.data.input_size, model=cfg.model,
                     provenance={"config": to_dict(cfg)})


def validate_stage1(model: nn.Module, val: PoseDataset, input_size: int, alpha: float) -> dict[str, float]:
    """Validation PCK@alpha and PCP (4-limb mean) of the current weights; leaves the model in train mode."""
    pred = predict_dataset(model, val, input_size, progress=False)
    gt, labelled = val.joints(), val.labelled()
    model.train()
    return {"val_pck": pck(pred, gt, labelled, val.skeleton, alpha),
            "val_pcp": pcp(pred, gt, labelled, val.skeleton)["mean"]}


def stage1_task(cfg: TrainConfig, train: PoseDataset, val: PoseDataset) -> StageTask:
    """The stage-1 regressor (Eq. 2-4): crops of the person box -> K box-normalized joints."""
    model = build_model(cfg, train.skeleton.num_joints)
    objective = make_objective(cfg, cfg.model, cfg.loss, cfg.heatmap, "loss")

    def loss(item: dict[str, Any]) -> torch.Tensor:
        images = item["image"]
        if cfg.model.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return masked_mean(objective(head_output(model, images), item["joints"]), loss_mask(cfg, item))

    return StageTask(model, CropDataset(train, cfg.data.input_size, cfg.data.augment, seed=cfg.seed), loss,
                     lambda: validate_stage1(model, val, cfg.data.input_size, cfg.val_alpha),
                     stage1_meta(cfg, train.skeleton.num_joints, train.skeleton.name))
