"""Training a cascade stage by stage, and the eval/predict CLIs on a cascade checkpoint."""

import json

import numpy as np
import pytest
import torch

from deeppose.cli import main
from deeppose.config import ModelConfig, load_config
from deeppose.errors import DeepPoseError
from deeppose.models.cascade import Cascade
from deeppose.models.checkpoint import load_checkpoint, model_from_checkpoint
from deeppose.serve.predictor import Predictor

STAGE1 = ["data.input_size=32", "data.num_workers=0", "data.train=[synthetic:train]", "data.val_size=16",
          "model.arch=small", "optim.batch_size=16", "epochs=1"]
CASCADE = ["cascade.stages=3", "cascade.sigma=1.0", "cascade.crop_size=16", "cascade.source_size=64",
           "cascade.draws=1", "cascade.optim.batch_size=16", "cascade.optim.warmup_steps=1", "cascade.epochs=1"]


@pytest.fixture(scope="module")
def cascade_run(synthetic_root, tmp_path_factory):
    """`deeppose train` of a 3-stage cascade on the synthetic set, one stage at a time."""
    data = tmp_path_factory.mktemp("cascadedata")
    (data / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    run = tmp_path_factory.mktemp("cascaderun") / "run"
    args = ["train", f"data.root={data}", *STAGE1, *CASCADE, "--out", str(run)]
    assert main([*args, "--stage", "2"]) == 0
    assert (run / "cascade_s2.pt").is_file() and not (run / "cascade.pt").exists()
    assert main(args) == 0  # continues with stage 3; stages 1 and 2 are skipped
    return run


def test_a_cascade_run_writes_every_stage(cascade_run):
    for name in ("stage1/best.pt", "stage2/best.pt", "stage3/best.pt", "stats_s2.json", "stats_s3.json",
                 "outputs_s1.npz", "cascade_s1.pt", "cascade_s2.pt", "cascade_s3.pt", "cascade.pt"):
        assert (cascade_run / name).is_file(), name
    meta = load_checkpoint(cascade_run / "cascade.pt")["meta"]
    assert meta.kind == "cascade" and meta.stages == 3 and [r.provenance["stage"] for r in meta.refiners] == [2, 3]
    # the statistics a stage trained on are saved with the checkpoint
    stats = json.loads((cascade_run / "stats_s2.json").read_text())["stats"]
    assert np.allclose(meta.refiners[0].provenance["stats"]["cov"], stats["cov"])
    assert np.array(stats["cov"]).shape == (14, 2, 2)
    model, _ = model_from_checkpoint(cascade_run / "cascade.pt")
    assert isinstance(model, Cascade) and model.num_stages == 3
    # stage 1 of the cascade is the stage-1 run's best checkpoint
    s1 = load_checkpoint(cascade_run / "stage1" / "best.pt")["model"]
    assert all(torch.equal(model.stage1.state_dict()[k], s1[k]) for k in s1)


def test_eval_reports_every_stage(cascade_run, synthetic_root, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--checkpoint", str(cascade_run / "cascade.pt"), "--dataset", "synthetic", "--root",
                 str(synthetic_root), "--split", "test", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"st{s}" in printed for s in (1, 2, 3))
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s["stage"] for s in metrics["stages"]] == [1, 2, 3] and metrics["n_stages"] == 3
    assert metrics["pcp"] == metrics["stages"][-1]["pcp"]
    for name in ("pdj.png", "pdj_stages.png", "refinements.png", "sheet.png"):
        assert (out / name).stat().st_size > 1000, name


def test_predict_with_fewer_stages(cascade_run, synthetic_root, tmp_path):
    image = synthetic_root / "images" / "test_00000.png"
    assert main(["predict", "--checkpoint", str(cascade_run / "cascade.pt"), str(image), "--out",
                 str(tmp_path / "p1"), "--stages", "1"]) == 0
    assert main(["predict", "--checkpoint", str(cascade_run / "cascade.pt"), str(image), "--out",
                 str(tmp_path / "p3")]) == 0
    one = json.loads((tmp_path / "p1" / "test_00000.png.json").read_text())
    three = json.loads((tmp_path / "p3" / "test_00000.png.json").read_text())
    assert one["stages"] == 1 and three["stages"] == 3 and len(three["joints"]) == 14
    predictor = Predictor.from_checkpoint(cascade_run / "cascade.pt")
    from deeppose.data.io import read_image

    every = predictor.predict(read_image(image)).stages
    assert every.shape == (3, 14, 2)
    assert np.allclose(every[0], [[j["x"], j["y"]] for j in one["joints"]], atol=1e-3)
    assert np.allclose(every[2], [[j["x"], j["y"]] for j in three["joints"]], atol=1e-3)
    assert main(["predict", "--checkpoint", str(cascade_run / "cascade.pt"), str(image), "--out",
                 str(tmp_path / "p4"), "--stages", "4"]) == 2


def test_flip_test_of_a_cascade_is_symmetric(cascade_run):
    predictor = Predictor.from_checkpoint(cascade_run / "cascade.pt", flip=True)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    sources = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=g)
    from deeppose.serve.pose import mirror_joints

    a = predictor.pose.normalized(images, sources)[0]
    b = mirror_joints(predictor.pose.normalized(images.flip(-1), sources.flip(-1))[0], predictor.skeleton)
    assert a.shape == (2, 3, 14, 2) and torch.allclose(a, b, atol=1e-5)


def test_cascade_config_errors(synthetic_root, tmp_path):
    from deeppose.train.cascade import train_cascade

    cfg = load_config(None, [*STAGE1, "cascade.stages=1"])
    with pytest.raises(DeepPoseError, match="at least 2"):
        train_cascade(cfg, tmp_path / "x")
    bad = load_config(None, [*STAGE1, "cascade.stages=2", f"cascade.stage1={tmp_path / 'none.pt'}"])
    with pytest.raises(DeepPoseError, match="checkpoint not found"):
        train_cascade(bad, tmp_path / "y")


def test_a_cascade_that_refines_only_the_wrists(cascade_run, synthetic_root, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    run = tmp_path / "wrists"
    assert main(["train", f"data.root={data}", *STAGE1, *CASCADE, "cascade.stages=2",
                 "cascade.joints=[l_wrist,r_wrist]", f"cascade.stage1={cascade_run / 'cascade_s1.pt'}",
                 "--out", str(run)]) == 0
    meta = load_checkpoint(run / "cascade.pt")["meta"]
    assert meta.cascade.joints == ["r_wrist", "l_wrist"] and meta.refiners[0].cascade.joints == ["r_wrist", "l_wrist"]
    model, _ = model_from_checkpoint(run / "cascade.pt")
    assert model.joints == [6, 11]
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g)
    sources = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=g)
    with torch.inference_mode():
        out = model(images, sources)
    assert torch.equal(out[:, 1, :6], out[:, 0, :6]) and not torch.equal(out[:, 1, 6], out[:, 0, 6])
    # a config that names other joints than the checkpoint refuses to extend it
    capsys.readouterr()
    assert main(["train", f"data.root={data}", *STAGE1, *CASCADE, "cascade.stages=3", "cascade.joints=[l_wrist]",
                 f"cascade.stage1={run / 'cascade.pt'}", "--out", str(tmp_path / "other")]) != 0
    err = capsys.readouterr().err
    assert "cascade.pt" in err and "joints" in err and "['l_wrist']" in err


def test_an_unknown_joint_name_is_a_config_error(tmp_path):
    from deeppose.train.cascade import train_cascade

    cfg = load_config(None, [*STAGE1, "cascade.stages=2", "cascade.joints=[l_wristt]"])
    with pytest.raises(DeepPoseError, match="l_wristt"):
        train_cascade(cfg, tmp_path / "x")


@pytest.mark.slow
def test_a_refinement_stage_measurably_refines_perturbed_joints(synthetic_root, tmp_path):
    """A fixed-seed minute of Eq. 8 training: joints displaced from the truth come back closer to it."""
    from functools import partial

    from deeppose.data.registry import load_dataset
    from deeppose.geometry import diam
    from deeppose.models.cascade import refinement_stage
    from deeppose.models.factory import create_model
    from deeppose.skeleton import get_skeleton
    from deeppose.train.builders import build_network
    from deeppose.train.cascade import refinement_task, stage_config, stage_outputs
    from deeppose.train.loop import fit
    from deeppose.train.simulation import DisplacementStats, sample_displacements

    lsp = get_skeleton("lsp14")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    cfg = load_config(None, [f"data.root={tmp_path / 'data'}", *STAGE1, "cascade.stages=2", "cascade.sigma=1.0",
                             "cascade.crop_size=24", "cascade.source_size=64", "cascade.draws=8",
                             "cascade.model.arch=mobilenet_v2", "cascade.optim.batch_size=16",
                             "cascade.optim.warmup_steps=5", "cascade.optim.lr=5e-3", "cascade.epochs=30"])
    torch.manual_seed(0)
    previous = Cascade(create_model(ModelConfig("small"), 14, 32).eval(), [], lsp, 1.0, 24, 64)
    stats = DisplacementStats(np.zeros((14, 2)), np.tile(np.eye(2) * 0.15 ** 2, (14, 1, 1)), np.full(14, 100))
    fit(stage_config(cfg), tmp_path / "s2", progress=False,
        make_task=partial(refinement_task, previous=previous, stats=stats, stage=2))
    refiner = build_network(cfg.cascade.model, 14, 24)
    refiner.load_state_dict(load_checkpoint(tmp_path / "s2" / "last.pt")["model"])
    test = load_dataset("synthetic", synthetic_root, "test")
    _, gt, labelled, sources = stage_outputs(previous, test, 32, keep_sources=True, progress=False)
    gt = torch.from_numpy(gt).float()
    d = diam(gt, torch.from_numpy(labelled), lsp)
    before = gt + sample_displacements(stats, (len(gt),), torch.Generator().manual_seed(5)) * d[:, None, None]
    with torch.inference_mode():
        after = refinement_stage(refiner.eval(), sources, before, lsp, 1.0, 24)
    error_before = ((before - gt).norm(dim=-1) / d[:, None]).mean()
    error_after = ((after - gt).norm(dim=-1) / d[:, None]).mean()
    assert error_after < 0.95 * error_before, (float(error_before), float(error_after))


def test_fine_tuning_from_a_cascade_takes_its_stage1(cascade_run, synthetic_root):
    from deeppose.train.builders import build_model

    cfg = load_config(None, [f"data.root={synthetic_root.parent}", *STAGE1, f"model.init={cascade_run / 'cascade.pt'}"])
    tuned = build_model(cfg, num_joints=14).state_dict()
    s1 = load_checkpoint(cascade_run / "stage1" / "best.pt")["model"]
    assert tuned.keys() == s1.keys() and all(torch.equal(tuned[k], s1[k]) for k in s1)
