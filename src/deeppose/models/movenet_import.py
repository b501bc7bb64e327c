"""MoveNet's pyramid and keypoint branch imported into `heads.movenet.MoveNetHead`, and with its backbone as a whole
deeppose pose network (`import_movenet_pose`; the command `deeppose import-tflite --pose-model SIZE`).

The convolutions are read as the backbone's are (`models.tflite_import.read_convolutions`, matched to their layer by
`owner`); MoveNet's 17 COCO heatmap read-outs are renamed into the skeleton's joints (`map_keypoint_rows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deeppose.config import ModelConfig
from deeppose.errors import DeepPoseError
from deeppose.heads.movenet import MoveNetHead
from deeppose.models.detector import PersonDetector
from deeppose.models.factory import create_model
from deeppose.models.meta import ModelMeta
from deeppose.models.tflite_import import import_tflite_backbone, pick_convolutions, read_convolutions
from deeppose.skeleton import COCO17, LSP14, Skeleton

# MoveNet's pyramid and keypoint branch -> `heads.movenet.MoveNetHead` modules: (op type, weight-name substring).
MOVENET_HEAD_LAYERS = {
    "lateral.3": ("CONV_2D", ("model_1/conv2d/",)), "lateral.2": ("CONV_2D", ("model_1/conv2d_1/",)),
    "lateral.1": ("CONV_2D", ("model_1/conv2d_2/",)), "lateral.0": ("CONV_2D", ("model_1/conv2d_3/",)),
    "fuse.0.0": ("DEPTHWISE_CONV_2D", ("model_1/separable_conv2d/",)),
    "fuse.0.1": ("CONV_2D", ("model_1/separable_conv2d/",)),
    "fuse.1.0": ("DEPTHWISE_CONV_2D", ("model_1/separable_conv2d_1/",)),
    "fuse.1.1": ("CONV_2D", ("model_1/separable_conv2d_1/",)),
    "fuse.2.0": ("DEPTHWISE_CONV_2D", ("model_1/separable_conv2d_2/",)),
    "fuse.2.1": ("CONV_2D", ("model_1/separable_conv2d_2/",)),
    "keypoints.0": ("DEPTHWISE_CONV_2D", ("kpt_heatmap_0/separable_conv2d_4/",)),
    "keypoints.1": ("CONV_2D", ("kpt_heatmap_0/separable_conv2d_4/",)),
    "logits": ("CONV_2D", ("kpt_heatmap_0/conv2d_5/",)),
}
# MoveNet's centre and keypoint-regression branches -> `models.detector.PersonDetector` modules.
MOVENET_DETECTOR_LAYERS = {
    "centre.0.0": ("DEPTHWISE_CONV_2D", ("center_0/separable_conv2d_3/",)),
    "centre.0.1": ("CONV_2D", ("center_0/separable_conv2d_3/",)),
    "centre.1": ("CONV_2D", ("center_0/conv2d_4/",)),
    "offsets.0.0": ("DEPTHWISE_CONV_2D", ("kpt_regress_0/separable_conv2d_5/",)),
    "offsets.0.1": ("CONV_2D", ("kpt_regress_0/separable_conv2d_5/",)),
    "offsets.1": ("CONV_2D", ("kpt_regress_0/conv2d_6/",)),
}
# Joints MoveNet lacks, started from the mean of its maps for these COCO keypoints.
STAND_INS = {"neck": ("l_shoulder", "r_shoulder"), "head_top": ("nose", "l_eye", "r_eye", "l_ear", "r_ear")}


def map_keypoint_rows(weight: torch.Tensor, bias: torch.Tensor, skeleton: Skeleton
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """MoveNet's 17 COCO heatmap read-outs ((17, C, 1, 1) weight, (17,) bias) as `skeleton`'s: a joint COCO has
    takes its row; neck and head top the mean of their `STAND_INS`; others the mean of all rows."""
    rows_w, rows_b = [], []
    for joint in skeleton.joints:
        names = (joint,) if joint in COCO17.joints else STAND_INS.get(joint, COCO17.joints)
        idx = [COCO17.index(n) for n in names]
        rows_w.append(weight[idx].mean(dim=0))
        rows_b.append(bias[idx].mean())
    return torch.stack(rows_w), torch.stack(rows_b)


def map_offset_rows(weight: torch.Tensor, bias: torch.Tensor, skeleton: Skeleton) -> tuple[torch.Tensor, torch.Tensor]:
    """MoveNet's 34 keypoint-regression read-outs ((34, C, 1, 1), (34,): (y, x) per COCO keypoint) as `skeleton`'s
    (2K rows: x, y per joint), each joint's pair chosen or averaged as `map_keypoint_rows` does."""
    parts = []
    for axis in (1, 0):  # x is MoveNet's second coordinate, y its first
        parts.append(map_keypoint_rows(weight[axis::2], bias[axis::2], skeleton))
    w = torch.stack([parts[0][0], parts[1][0]], dim=1).flatten(0, 1)
    b = torch.stack([parts[0][1], parts[1][1]], dim=1).flatten(0, 1)
    return w, b


def load_convolutions(path: Path, module: nn.Module, found: dict[str, tuple[np.ndarray, np.ndarray]],
                      rows: dict[str, Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]]
                      ) -> None:
    """Copy each found (weight, bias) into `module`'s convolution of that name (in place), through `rows[name]`
    where the read-out's rows are renamed; DeepPoseError naming the file when a shape does not fit."""
    modules = dict(module.named_modules())
    for name, (weight, bias) in found.items():
        w, b = torch.from_numpy(weight), torch.from_numpy(bias)
        if name in rows:
            w, b = rows[name](w, b)
        conv = modules[name]
        if tuple(w.shape) != tuple(conv.weight.shape):
            raise DeepPoseError(path, f"{name}: weight {tuple(w.shape)}, the model has {tuple(conv.weight.shape)}")
        with torch.no_grad():
            conv.weight.copy_(w)
            conv.bias.copy_(b)


def import_movenet_head(path: str | Path, head: MoveNetHead, skeleton: Skeleton) -> None:
    """Load MoveNet's pyramid and keypoint branch into `head` (in place), its 17 maps renamed into `skeleton`'s
    (`map_keypoint_rows`); DeepPoseError naming the file when a layer is missing or does not fit."""
    path = Path(path)
    found = pick_convolutions(path, read_convolutions(path), MOVENET_HEAD_LAYERS)
    load_convolutions(path, head, found, {"logits": lambda w, b: map_keypoint_rows(w, b, skeleton)})


def import_movenet_pose(path: str | Path, input_size: int = 192, calibration: Iterable[torch.Tensor] = (),
                        skeleton: Skeleton = LSP14) -> tuple[nn.Module, ModelMeta]:
    """All of MoveNet's pose knowledge as a deeppose stage-1 network: its backbone (`import_tflite_backbone`) and
    its pyramid and keypoint branch under a DSNT read-out (`heads.movenet.MoveNetHead`, `import_movenet_head`),
    predicting `skeleton`'s joints; with its metadata, ready for `save_checkpoint` (then `model.init`, or `eval`
    as it is).

    Args:
        input_size: the network's input side (MoveNet's own: 192), a multiple of 32.
        calibration: as `import_tflite_backbone`'s.
    """
    path = Path(path)
    state, provenance = import_tflite_backbone(path, calibration)
    arch = ModelConfig("mobilenet_v2", head="movenet", stride=4, top_stride=32, dropout=0.0, padding="tf_same",
                       freeze_bn=True)
    model = create_model(arch, skeleton.num_joints, input_size)
    model.backbone.load_state_dict(state, strict=False)
    import_movenet_head(path, model.head, skeleton)
    head = {"head": "MoveNet's pyramid + keypoint heatmap branch under DSNT; COCO maps renamed into "
                    f"{skeleton.name}, " + ", ".join(f"{j} from the mean of {'/'.join(v)}" for j, v in STAND_INS.items()
                                                    if j in skeleton.joints)}
    meta = ModelMeta("stage1", skeleton.name, skeleton.num_joints, input_size, model=arch,
                     provenance={"imported": {**provenance, **head}})
    return model, meta


def import_movenet_detector(path: str | Path, input_size: int = 192, calibration: Iterable[torch.Tensor] = (),
                            skeleton: Skeleton = LSP14) -> tuple[PersonDetector, ModelMeta]:
    """MoveNet as a deeppose person detector: `import_movenet_pose`'s network (backbone, pyramid) with MoveNet's
    person-centre and keypoint-regression branches (`models.detector.PersonDetector`), its 17 COCO offsets renamed
    into `skeleton`'s (`map_offset_rows`); with its metadata (uncalibrated scores), ready for `save_checkpoint`
    (then `detector.init`, or use as it is)."""
    path = Path(path)
    regressor, pose_meta = import_movenet_pose(path, input_size, calibration, skeleton)
    detector = PersonDetector(regressor)
    found = pick_convolutions(path, read_convolutions(path), MOVENET_DETECTOR_LAYERS)
    load_convolutions(path, detector, found, {"offsets.1": lambda w, b: map_offset_rows(w, b, skeleton)})
    meta = ModelMeta("detector", skeleton.name, skeleton.num_joints, input_size, model=pose_meta.model,
                     provenance={"imported": {**pose_meta.provenance["imported"],
                                              "detector": "MoveNet's centre and keypoint-regression branches; "
                                                          "COCO offsets renamed as the heatmaps are"}})
    return detector, meta
