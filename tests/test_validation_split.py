"""One fixed whole-photo LSPET split held out from every network (lspet:val), validation on it (data.val), and the
backbone's own learning rate (optim.backbone_lr)."""

from dataclasses import replace

import numpy as np
import pytest
from fixtures import TINY, lspet_folder

from deeppose.config import DataConfig, OptimConfig
from deeppose.data.lsp import LSPET_VAL_SIZE, lspet_val_indices
from deeppose.data.registry import load_dataset
from deeppose.errors import DeepPoseError
from deeppose.models.factory import create_model
from deeppose.paths import data_root
from deeppose.train.builders import build_datasets, make_optimizer
from deeppose.train.localizer import whole_image_splits


def test_lspet_val_is_500_fixed_photos_disjoint_from_train_and_the_localizers(lspet_root):
    val, train, everything = (load_dataset("lspet", lspet_root, s) for s in ("val", "train", "all"))
    ids = {s: {x.image_id for x in d.samples} for s, d in (("val", val), ("train", train), ("all", everything))}
    assert len(val) == LSPET_VAL_SIZE == 500 and len(train) == len(everything) - 500
    assert not ids["val"] & ids["train"] and ids["val"] | ids["train"] == ids["all"]
    assert [x.image_id for x in val.samples] == [everything.samples[i].image_id for i in lspet_val_indices(9600)]
    splits = whole_image_splits(data_root(), seed=7)  # the localizer holds out the same photos, whatever its seed
    assert {x.image_id for x in splits["lspet_val"].samples} == ids["val"]


def test_a_small_lspet_folder_has_no_val_and_trains_on_everything(tmp_path):
    lspet_folder(tmp_path)
    assert len(load_dataset("lspet", tmp_path, "train")) == 3
    with pytest.raises(DeepPoseError, match="held-out"):
        load_dataset("lspet", tmp_path, "val")
    with pytest.raises(DeepPoseError, match="unknown LSPET split"):
        load_dataset("lspet", tmp_path, "valid")
    assert lspet_val_indices(10, 3).tolist() == sorted(lspet_val_indices(10, 3).tolist())


def test_data_val_validates_on_its_own_set_and_refuses_one_shared_with_training(lspet_root):
    cfg = DataConfig(train=["lsp:train", "lspet:train"], val="lspet:val", joints_box=["lspet"])
    train, val = build_datasets(cfg, seed=0)
    assert len(val) == 500 and len(train) == 1000 + 9100
    assert all(s.box is not None for s in val.samples)  # people in their annotated (joints) boxes
    with pytest.raises(DeepPoseError, match="shares 500 photos"):
        build_datasets(replace(cfg, train=["lsp:train", "lspet:all"]), seed=0)


def test_backbone_lr_scales_only_the_backbone_groups():
    model = create_model(TINY, 14, 64)
    opt, _ = make_optimizer(model, OptimConfig(lr=1e-3, backbone_lr=0.1), 100)
    ids = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        names = [ids[id(p)] for p in group["params"]]
        in_backbone = {n.startswith("backbone.") for n in names}
        assert len(in_backbone) == 1
        assert np.isclose(group["initial_lr"], 1e-4 if in_backbone.pop() else 1e-3)
        assert group["weight_decay"] == (1e-4 if all(p.ndim > 1 for p in group["params"]) else 0.0)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    with pytest.raises(DeepPoseError, match="backbone_lr"):
        make_optimizer(model, OptimConfig(backbone_lr=2.0), 100)
    plain, _ = make_optimizer(model, OptimConfig(lr=1e-3), 100)  # the two groups of earlier runs, decay first
    assert [g["weight_decay"] for g in plain.param_groups] == [1e-4, 0.0]
