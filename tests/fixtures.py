"""Builders of small dataset folders in the real on-disk formats (LSP, LSPET, MPII, COCO, FLIC, custom)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from deeppose.config import ModelConfig


def write_images(folder: Path, names: list[str], size: tuple[int, int] = (40, 60)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def lsp_folder(root: Path, n: int = 4) -> np.ndarray:
    """An LSP-format folder: joints.mat 3 x 14 x n, flag 0 = visible; image k has flag 1 on joint k."""
    rng = np.random.default_rng(1)
    joints = np.zeros((3, 14, n))
    joints[:2] = rng.uniform(2, 35, (2, 14, n))
    for k in range(n):
        joints[2, k % 14, k] = 1
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    write_images(root / "images", [f"im{k + 1:04d}.jpg" for k in range(n)])
    return joints


def lspet_folder(root: Path, ids: list[int] | None = (401, 402, 405)) -> np.ndarray:
    """An LSPET-format folder: joints.mat 14 x 3 x n, flag 1 = visible; invisible joints hold junk."""
    n = 3 if ids is None else len(ids)
    rng = np.random.default_rng(2)
    joints = np.ones((14, 3, n))
    joints[:, :2] = rng.uniform(2, 35, (14, 2, n))
    joints[5, :, 0] = (-53.27, 0.0, 0.0)  # junk coordinate, flag 0
    joints[0, :, 2] = (0.0, -26.1, 0.0)
    content = {"joints": joints}
    if ids is not None:
        content["image_ids"] = np.array([ids], dtype=np.int32)
    scipy.io.savemat(root / "joints.mat", content)
    names = [f"im{i:05d}.jpg" for i in (ids if ids is not None else range(1, n + 1))]
    write_images(root / "images", names)
    return joints


def coco_folder(root: Path) -> Path:
    """COCO layout: annotations/person_keypoints_val2017.json + val2017/ images; one crowd, one empty person."""
    write_images(root / "val2017", ["000000000001.jpg", "000000000002.jpg"], size=(80, 60))
    kps = []
    for k in range(17):
        kps += [10.0 + k, 20.0 + k, 2 if k % 3 else 1]
    kps[3 * 16 + 2] = 0  # right ankle not labelled
    kps[3 * 16], kps[3 * 16 + 1] = 0.0, 0.0
    data = {
        "images": [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000002.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 1, "keypoints": kps, "num_keypoints": 16, "bbox": [5, 10, 40, 30], "iscrowd": 0},
            {"id": 11, "image_id": 2, "keypoints": kps, "num_keypoints": 16, "bbox": [0, 0, 80, 60], "iscrowd": 1},
            {"id": 12, "image_id": 2, "keypoints": [0] * 51, "num_keypoints": 0, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (root / "annotations").mkdir(parents=True)
    path = root / "annotations" / "person_keypoints_val2017.json"
    path.write_text(json.dumps(data))
    return path


def flic_folder(root: Path) -> None:
    """FLIC layout: examples.mat (1 x 3 struct array) + images/; slots not annotated by FLIC are NaN."""
    dtype = [("coords", object), ("filepath", object), ("istrain", object), ("istest", object),
             ("torsobox", object)]
    examples = np.zeros((1, 3), dtype=dtype)
    for k in range(3):
        coords = np.full((2, 29), np.nan)
        coords[:, [0, 1, 2, 3, 4, 5, 6, 9, 12, 13, 16]] = np.arange(22).reshape(2, 11) + k
        examples[0, k] = (coords, f"movie-{k:03d}.jpg", float(k < 2), float(k == 2),
                          np.array([[10.0, 5.0, 30.0, 45.0]]))
    scipy.io.savemat(root / "examples.mat", {"examples": examples})
    write_images(root / "images", [f"movie-{k:03d}.jpg" for k in range(3)], size=(72, 48))


def schema1_checkpoint(path: Path, state: dict, meta: dict) -> Path:
    """A checkpoint as deeppose wrote it before typed metadata (schema 1): a flat meta dict, the same container."""
    import torch

    from deeppose.models.checkpoint import FORMAT_VERSION, state_dict_sha256

    torch.save({"format_version": FORMAT_VERSION, "model": state, "meta": meta,
                "weights_sha256": state_dict_sha256(state)}, path)
    return path


# the tiny architectures of the export and video tests: a DSNT stage 1 and a soft-argmax refiner
TINY = ModelConfig("mobilenet_v2", head="dsnt", stride=8, reduce=16, width=0.35)
TINY_REFINER = ModelConfig("mobilenet_v2", head="soft_argmax", stride=4, top_stride=8, reduce=8, width=0.35)


def tiny_pipeline(folder: Path) -> Path:
    """A pipeline of untrained tiny networks: a localizer in front of a 2-stage cascade (refining both wrists)."""
    import torch

    from deeppose.models.cascade import Cascade
    from deeppose.models.checkpoint import bundle_checkpoint, save_checkpoint
    from deeppose.models.factory import create_model
    from deeppose.models.meta import CascadeGeometry, ModelMeta
    from deeppose.skeleton import LSP14
    from deeppose.train.localizer import LocalizerConfig, build_localizer, localizer_meta

    torch.manual_seed(0)
    stage1 = create_model(TINY, 14, 64)
    refiner = create_model(TINY_REFINER, 14, 16)
    joints = [LSP14.index("r_wrist"), LSP14.index("l_wrist")]
    cascade = Cascade(stage1, [refiner], LSP14, 1.5, 16, 64, joints)
    geometry = CascadeGeometry(1.5, 16, 64, ["r_wrist", "l_wrist"])
    meta = ModelMeta("cascade", "lsp14", 14, 64, cascade=geometry,
                     stage1=ModelMeta("stage1", "lsp14", 14, 64, model=TINY),
                     refiners=[ModelMeta("refiner", "lsp14", 14, 16, model=TINY_REFINER, cascade=geometry)])
    save_checkpoint(folder / "cascade.pt", cascade, meta)
    cfg = LocalizerConfig(init="", input_size=64, model=TINY)
    save_checkpoint(folder / "loc.pt", build_localizer(cfg.model, 14, 64), localizer_meta(cfg, "lsp14", 14))
    return bundle_checkpoint(folder / "cascade.pt", folder / "loc.pt", folder / "pipe.pt", half=False)
