"""Training every head end to end on the synthetic set: the loss falls, checkpoints reload, predictions carry a
per-joint confidence, and a cascade's refinement stage can use a heatmap head."""

import json

import numpy as np
import pytest
import torch

from deeppose.cli import main
from deeppose.config import load_config
from deeppose.models.checkpoint import load_checkpoint
from deeppose.serve.predictor import Predictor
from deeppose.train.builders import build_datasets
from deeppose.train.stage1 import stage1_task
from deeppose.visualize import save_image

BASE = ["data.input_size=64", "data.num_workers=0", "data.train=[synthetic:train]", "data.val_size=16",
        "model.arch=mobilenet_v2", "model.reduce=16", "optim.batch_size=8", "optim.warmup_steps=2",
        "optim.lr=0.003", "epochs=2"]
HEADS = {
    "fc_l2": ["model.head=fc", "model.stride=32", "loss=l2"],
    "dsnt": ["model.head=dsnt", "model.stride=8", "loss=euclidean", "heatmap.regularizer=js"],
    "dsnt_variance": ["model.head=dsnt", "model.stride=16", "loss=euclidean", "heatmap.regularizer=variance"],
    "heatmap_refine": ["model.head=heatmap", "model.stride=8", "loss=mse", "heatmap.sigma=1.5", "model.refine=true"],
    "movenet": ["model.head=movenet", "model.stride=4", "loss=euclidean", "heatmap.regularizer=js"],
}


@pytest.fixture
def data_root(synthetic_root, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    return data


@pytest.mark.parametrize("head", sorted(HEADS))
def test_each_head_fits_a_batch(head, data_root):
    """Its objective and its network train: 25 AdamW steps on one fixed batch cut the loss at least in half."""
    cfg = load_config(None, [f"data.root={data_root}", *BASE, *HEADS[head], "model.dropout=0.0"])
    train, val = build_datasets(cfg.data, cfg.seed)
    task = stage1_task(cfg, train, val)
    batch = torch.utils.data.default_collate([task.crops[i] for i in range(8)])
    opt = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    task.model.train()
    losses = []
    for _ in range(25):
        loss = task.loss(batch)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert task.loss(batch).item() < 0.5 * losses[0], losses


@pytest.mark.slow
@pytest.mark.parametrize("head", sorted(HEADS))
def test_each_head_trains_and_predicts_with_confidence(head, data_root, tmp_path, capsys):
    run = tmp_path / head
    assert main(["train", f"data.root={data_root}", *BASE, *HEADS[head], "--out", str(run)]) == 0
    meta = load_checkpoint(run / "best.pt")["meta"]
    assert meta.model.head == HEADS[head][0].split("=")[1]
    image = np.random.default_rng(0).integers(0, 255, (80, 60, 3), dtype=np.uint8)
    save_image(tmp_path / "person.png", image)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(run / "best.pt"), str(tmp_path / "person.png"), "--out",
                 str(tmp_path / "pred"), "--min-confidence", "0.5"]) == 0
    joints = json.loads((tmp_path / "pred" / "person.png.json").read_text())["joints"]
    api = Predictor.from_checkpoint(run / "best.pt").predict(image)  # the JSON holds what the API predicts
    confidence = [np.nan if j["confidence"] is None else j["confidence"] for j in joints]
    np.testing.assert_allclose(confidence, api.confidence, atol=1e-6)
    np.testing.assert_allclose([[j["x"], j["y"]] for j in joints], api.joints, atol=1e-4)


@pytest.mark.slow
def test_a_cascade_refines_with_a_heatmap_head(data_root, tmp_path):
    run = tmp_path / "cascade"
    args = ["train", f"data.root={data_root}", *BASE[:-1], "epochs=1", "model.head=dsnt", "model.stride=8",
            "loss=euclidean", "cascade.stages=2", "cascade.crop_size=16", "cascade.source_size=64",
            "cascade.draws=1", "cascade.optim.batch_size=16", "cascade.epochs=1", "cascade.model.head=heatmap",
            "cascade.loss=mse", "--out", str(run)]
    assert main(args) == 0
    meta = load_checkpoint(run / "cascade.pt")["meta"]
    assert meta.refiners[0].model.head == "heatmap"
    assert main(["eval", "--checkpoint", str(run / "cascade.pt"), "--dataset", "synthetic", "--root",
                 str(data_root / "synthetic"), "--split", "test", "--out", str(tmp_path / "report")]) == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    confidence = metrics["confidence"]  # scored on the same joints as the PCK: all of them kept, the same PCK
    assert confidence["n_joints"] == metrics["n_joints"]
    assert confidence["pck_of_most_confident"]["1"] == pytest.approx(metrics["pck"]["0.2"], abs=1e-9)
    # a heatmap-head cascade stage asks for the heatmap loss
    assert main([*args[:-2], "cascade.loss=l1", "--out", str(tmp_path / "bad")]) != 0
