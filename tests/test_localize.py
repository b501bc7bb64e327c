"""Person localization: the box rule and the re-crop cascade, whole-photo training views, presence calibration,
pipeline checkpoints, and the shipped model on real and synthetic scenes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from deeppose.cli import main
from deeppose.config import ModelConfig, OptimConfig
from deeppose.data.io import read_image
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.data.whole_image import WholeImageDataset, ZoomOut, clear_region, synthetic_background, zoom_out_box
from deeppose.errors import DeepPoseError
from deeppose.geometry import centre_box, joints_box
from deeppose.models.checkpoint import bundle_checkpoint, save_checkpoint
from deeppose.models.meta import ModelMeta
from deeppose.paths import default_model
from deeppose.serve.localize import (
    box_change,
    calibrate_presence,
    checked_box,
    iou,
    person_box,
    person_in_box,
    presence_probability,
    recrop_until_converged,
)
from deeppose.serve.predictor import Predictor
from deeppose.train.localizer import LocalizerConfig, build_localizer, localizer_meta


def test_person_box_is_the_joints_extent_times_the_scale():
    joints = np.array([[10.0, 20.0], [30.0, 80.0], [20.0, 50.0]])
    np.testing.assert_allclose(person_box(joints, 1.5), [20.0, 50.0, 90.0, 90.0])
    with pytest.raises(ValueError, match="NaN"):
        person_box(np.array([[np.nan, 1.0], [2.0, 3.0]]))


def test_recrop_leaves_a_fixed_point_unchanged():
    box = np.array([[50.0, 60.0, 40.0, 40.0]])
    # joints whose box (scale 1.33) is exactly `box`: extent 40 / 1.33 around the centre
    half = 40.0 / 1.33 / 2
    joints = np.array([[[50 - half, 60 - half], [50 + half, 60 + half]]])
    calls = []

    def pose(idx, boxes):
        calls.append(boxes.copy())
        return joints[idx][:, None], np.ones((len(idx), 2))

    r = recrop_until_converged(pose, box, recrops=3, tol=1e-9)
    np.testing.assert_allclose(r.boxes, box)
    assert r.iterations.tolist() == [1] and len(calls) == 1


def test_recrop_converges_and_stops_early():
    target = np.array([100.0, 100.0])

    def pose(idx, boxes):
        # a network that moves halfway to the truth from wherever its box is
        centre = (boxes[:, :2] + target) / 2
        offsets = np.array([[-15.0, -15.0], [15.0, 15.0]])
        return (centre[:, None, :] + offsets)[:, None], np.ones((len(idx), 2))

    r = recrop_until_converged(pose, np.array([[40.0, 40.0, 40.0, 40.0], [100.0, 100.0, 39.9, 39.9]]), recrops=10,
                               tol=0.01)
    assert np.abs(r.boxes[0, :2] - target).max() < 1.0  # moved to the person
    assert r.iterations[1] < r.iterations[0] <= 11  # the one already there stopped first
    assert box_change(r.boxes[0], person_box(r.joints[0, -1])) <= 0.01 or r.iterations[0] == 11


def test_a_box_outside_the_image_is_refused():
    with pytest.raises(DeepPoseError, match="outside the 100 x 50 image"):
        checked_box(np.array([300.0, 20.0, 40.0, 40.0]), 100, 50)
    with pytest.raises(DeepPoseError, match="positive width"):
        checked_box(np.array([10.0, 20.0, 0.0, 40.0]), 100, 50)
    box = np.array([95.0, 20.0, 40.0, 40.0])  # partly outside: kept, the crop pads the rest
    np.testing.assert_array_equal(checked_box(box, 100, 50), box)


def test_iou():
    a = np.array([0.0, 0.0, 2.0, 2.0])
    assert iou(a, a) == pytest.approx(1.0)
    assert iou(a, np.array([1.0, 0.0, 2.0, 2.0])) == pytest.approx(1 / 3)
    assert iou(a, np.array([5.0, 5.0, 1.0, 1.0])) == 0.0


def test_person_in_box():
    joints = np.array([[[10.0, 10.0], [30.0, 50.0]], [[10.0, 10.0], [30.0, 50.0]]])
    labelled = np.ones((2, 2), bool)
    rule = person_box(joints[0])
    boxes = np.stack([rule, rule + np.array([rule[2], 0.0, 0.0, 0.0])])  # on the person; one side away
    assert person_in_box(boxes, joints, labelled).tolist() == [True, False]
    assert not person_in_box(boxes[:1], joints[:1], np.zeros((1, 2), bool))[0]


def test_platt_calibration_recovers_a_known_scaling():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, 4000)
    labels = (rng.random(4000) < presence_probability(logits, 2.0, -1.0)).astype(float)
    cal = calibrate_presence(logits, labels)
    # balanced weighting shifts b by the log prior ratio; a is recovered
    assert cal["a"] == pytest.approx(2.0, rel=0.15)
    prior = np.log(labels.mean() / (1 - labels.mean()))
    assert cal["b"] == pytest.approx(-1.0 - prior, abs=0.2)
    with pytest.raises(ValueError, match="both"):
        calibrate_presence(logits, np.ones_like(logits))


def test_zoom_out_box_holds_the_person_at_the_drawn_fraction():
    rng = np.random.default_rng(1)
    person = np.array([200.0, 150.0, 60.0, 60.0])
    zoom = ZoomOut(person_fraction=(0.15, 1.0))
    for _ in range(200):
        box = zoom_out_box(rng, person, zoom)
        assert 0.15 - 1e-9 <= person[2] / box[2] <= 1.0 + 1e-9
        assert np.all(np.abs(person[:2] - box[:2]) <= (box[2] - person[2]) / 2 + 1e-9)  # person inside
    limit = np.array([200.0, 200.0, 300.0, 300.0])
    for _ in range(200):
        box = zoom_out_box(rng, person, zoom, limit)
        assert box[2] <= 300.0 + 1e-9
        assert np.all(np.abs(box[:2] - limit[:2]) <= (limit[2] - box[2]) / 2 + 1e-9)


def test_clear_region_misses_the_person():
    rng = np.random.default_rng(2)
    person = np.array([100.0, 100.0, 50.0, 50.0])
    zoom = ZoomOut(clearance=1.3, min_region=0.2)
    found = 0
    for _ in range(50):
        box = clear_region(rng, 400, 300, person, zoom)
        if box is not None:
            found += 1
            grown = np.array([*person[:2], *(person[2:] * 1.3)])
            assert iou(box, grown) == 0.0
            assert box[0] - box[2] / 2 >= -0.5 - 1e-9 and box[0] + box[2] / 2 <= 399.5 + 1e-9
    assert found > 25
    assert clear_region(rng, 60, 60, np.array([30.0, 30.0, 58.0, 58.0]), zoom) is None  # no room


def test_synthetic_backgrounds_are_varied_images():
    rng = np.random.default_rng(3)
    images = [synthetic_background(rng, 64) for _ in range(20)]
    assert all(im.shape == (64, 64, 3) and im.dtype == np.uint8 for im in images)
    assert len({round(float(im.std()), 1) for im in images}) > 5


def test_whole_image_views(tmp_path):
    rng = np.random.default_rng(4)
    import cv2

    from deeppose.data.sample import Sample
    from deeppose.skeleton import get_skeleton

    samples = []
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 255, (120, 200, 3), dtype=np.uint8))
        joints = rng.uniform([60, 40], [100, 80], (14, 2)).astype(np.float32)
        samples.append(Sample(tmp_path / f"{i}.png", joints, np.ones(14, bool), np.ones(14, bool), None, str(i)))
    ds = PoseDataset("lspet", tmp_path, "all", get_skeleton("lsp14"), samples)
    whole = WholeImageDataset(ds, 64)[0]
    assert whole["presence"] == 1.0 and whole["weight"].all()  # the whole image holds every joint
    views = WholeImageDataset(ds, 64, ZoomOut(negative_prob=0.5), seed=1)
    items = [views[i] for i in range(6) for _ in range(1)] + [views[i] for i in range(6)]
    negatives = [it for it in items if it["presence"] == 0]
    positives = [it for it in items if it["presence"] == 1]
    assert negatives and positives
    assert all(not it["weight"].any() for it in negatives)
    assert all((it["joints"][it["weight"]].abs() <= 0.5).all() for it in positives)
    views.set_epoch(1)
    assert not torch.equal(views[0]["image"], WholeImageDataset(ds, 64, ZoomOut(negative_prob=0.5), seed=1)[0]["image"])


def _tiny_localizer(path: Path) -> Path:
    cfg = LocalizerConfig(init="", input_size=64, model=ModelConfig(arch="mobilenet_v2", head="dsnt", stride=8,
                                                                    reduce=16, width=0.35),
                          lsp_val_size=6, lspet_val_size=6)
    model = build_localizer(cfg.model, 14, 64)
    return save_checkpoint(path, model, localizer_meta(cfg, "lsp14", 14))


def _tiny_pose(path: Path) -> Path:
    from deeppose.models.factory import create_model

    m = ModelConfig("mobilenet_v2", width=0.35, stride=8, reduce=16, head="dsnt")
    model = create_model(m, 14, 64)
    return save_checkpoint(path, model, ModelMeta("stage1", "lsp14", 14, 64, model=m))


def test_pipeline_checkpoint_round_trip(tmp_path):
    loc, pose = _tiny_localizer(tmp_path / "loc.pt"), _tiny_pose(tmp_path / "pose.pt")
    bundle = bundle_checkpoint(pose, loc, tmp_path / "pipe.pt")
    p = Predictor.from_checkpoint(bundle)
    assert p.localizer is not None and p.recrops == 2
    image = np.random.default_rng(0).integers(0, 255, (90, 130, 3), dtype=np.uint8)
    r = p.predict(image)
    assert r.box_source == "found" and r.person_found == (r.person_score >= 0.5)
    # the score is the presence logit through the checkpoint's calibration
    rule = p.localizer_meta.box_rule
    calibrated = Predictor(p.model, p.meta, localizer=p.localizer,
                           localizer_meta=replace(p.localizer_meta, box_rule=replace(rule, a=2.0, b=-1.0)))
    logit = (np.log(r.person_score / (1 - r.person_score)) - rule.b) / rule.a
    assert calibrated.predict(image).person_score == pytest.approx(1 / (1 + np.exp(-(2.0 * logit - 1.0))), abs=1e-6)
    assert r.joints.shape == (14, 2) and 1 <= r.passes <= 3
    given = p.predict(image, np.array([60.0, 40.0, 50.0, 50.0]))
    assert given.box_source == "given" and given.passes == 1
    np.testing.assert_allclose(given.box, [60.0, 40.0, 50.0, 50.0])
    plain = Predictor.from_checkpoint(bundle, localize=False).predict(image)
    assert plain.box_source == "image" and plain.person_score is None
    with pytest.raises(DeepPoseError, match="expected a person detector or localizer"):
        bundle_checkpoint(pose, pose, tmp_path / "bad.pt")
    with pytest.raises(DeepPoseError, match="localizer alone"):
        Predictor.from_checkpoint(loc)
    with pytest.raises(ValueError, match="RGB image"):
        p.predict(image[..., :2])  # two channels: neither RGB nor grayscale


def test_cli_predict_writes_person_fields_and_refuses_an_outside_box(tmp_path, capsys):
    import cv2

    loc, pose = _tiny_localizer(tmp_path / "loc.pt"), _tiny_pose(tmp_path / "pose.pt")
    bundle = bundle_checkpoint(pose, loc, tmp_path / "pipe.pt")
    cv2.imwrite(str(tmp_path / "a.png"), np.full((50, 70, 3), 128, np.uint8))
    assert main(["predict", "--checkpoint", str(bundle), str(tmp_path / "a.png"), "--out", str(tmp_path / "o")]) == 0
    out = json.loads((tmp_path / "o" / "a.png.json").read_text())
    assert set(out) >= {"person_score", "person_found", "box", "box_source"} and out["box_source"] == "found"
    line = capsys.readouterr().out.splitlines()[0]
    assert ("nobody found" in line) != out["person_found"] and "person_score" in line
    proc = subprocess.run([sys.executable, "-m", "deeppose", "predict", "--checkpoint", str(bundle),
                           str(tmp_path / "a.png"), "--out", str(tmp_path / "o2"), "--box", "500,500,10,10"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "outside the 70 x 50 image" in proc.stderr
    assert not (tmp_path / "o2").exists()


def _shipped() -> Path:
    path = default_model()
    if not path.is_file():
        pytest.fail(f"the shipped model {path} is missing")
    return path


@pytest.mark.shared_data
@pytest.mark.slow
def test_shipped_model_finds_a_small_person_in_a_synthetic_scene(lsp_root):
    """An LSP test person pasted 160 px tall into a 640 x 480 synthetic scene, away from the borders: the box found
    must be centred on them (its centre inside the box around their annotated joints) in at least 3 of 4 scenes.

    Measured with the shipped model: 3 of 4 centred, 1 of 4 with IoU >= 0.5 (the box is often too small on these
    composites); placed at the borders, 2 of 4 (model card, limitations)."""
    import cv2

    predictor = Predictor.from_checkpoint(_shipped())
    test = load_dataset("lsp", lsp_root, "test")
    rng = np.random.default_rng(5)
    hits = 0
    for k, i in enumerate((3, 10, 42, 77)):
        s = test[i]
        person = read_image(s.image_path)
        scene = cv2.resize(synthetic_background(rng, 160), (640, 480))
        scale = 160 / max(person.shape[:2])
        small = cv2.resize(person, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x0, y0 = [(150, 100), (250, 200), (350, 60), (420, 250)][k]
        scene[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
        truth = joints_box(s.joints * scale + np.array([x0, y0]), s.labelled, 1.33)
        r = predictor.predict(scene)
        hits += bool(np.all(np.abs(centre_box(*r.box)[:2] - truth[:2]) <= truth[2:] / 2))
    assert hits >= 3


@pytest.mark.shared_data
@pytest.mark.slow
def test_person_found_on_lsp_and_not_on_noise(lsp_root):
    predictor = Predictor.from_checkpoint(_shipped())
    test = load_dataset("lsp", lsp_root, "test")
    people = [read_image(test[i].image_path) for i in range(0, 1000, 50)]
    rng = np.random.default_rng(6)
    nobody = [rng.integers(0, 256, (200, 300, 3), dtype=np.uint8) for _ in range(10)]
    nobody += [np.full((240, 160, 3), c, np.uint8) for c in (0, 90, 255)]
    found_people = [r.person_found for r in predictor.predict_images(people)]
    found_nobody = [r.person_found for r in predictor.predict_images(nobody)]
    assert np.mean(found_people) >= 0.9
    assert not any(found_nobody)


def test_eval_scores_found_and_annotated_boxes(synthetic_root, tmp_path, capsys):
    loc, pose = _tiny_localizer(tmp_path / "loc.pt"), _tiny_pose(tmp_path / "pose.pt")
    bundle = bundle_checkpoint(pose, loc, tmp_path / "pipe.pt")
    out = tmp_path / "report"
    assert main(["eval", "--checkpoint", str(bundle), "--dataset", "synthetic", "--root", str(synthetic_root),
                 "--split", "test", "--out", str(out)]) == 0
    boxes = json.loads((out / "boxes.json").read_text())
    assert list(boxes) == ["found", "annotated"] and boxes["found"]["report"] == str(out)
    found = json.loads((out / "metrics.json").read_text())
    annotated = json.loads((out / "annotated" / "metrics.json").read_text())
    assert found["boxes"]["source"] == "found" and annotated["boxes"]["source"] == "annotated"
    assert main(["eval", "--checkpoint", str(pose), "--dataset", "synthetic", "--root", str(synthetic_root),
                 "--split", "test", "--out", str(tmp_path / "r2"), "--boxes", "found"]) == 2
    assert "needs a person detector or localizer" in capsys.readouterr().err


def _tiny_run_config(**kw) -> LocalizerConfig:
    model = ModelConfig(arch="mobilenet_v2", head="dsnt", stride=8, reduce=16, width=0.35, dropout=0.1)
    return LocalizerConfig(init="", input_size=64, optim=OptimConfig(batch_size=8, warmup_steps=2), epochs=2,
                           num_workers=0, checkpoint_minutes=1e9, model=model, **kw)


@pytest.mark.slow
def test_localizer_training_resumes_to_the_same_weights(synthetic_root, tmp_path):
    from deeppose.data.synthetic import load_synthetic
    from deeppose.models.checkpoint import load_checkpoint
    from deeppose.train.localizer import train_localizer

    train, val = load_synthetic(synthetic_root, "train"), load_synthetic(synthetic_root, "val")
    splits = {"lsp_train": train.subset(range(24), "train"), "lspet_train": train.subset(range(24, 48), "train"),
              "lsp_val": val, "lspet_val": val}
    cfg = _tiny_run_config()
    full = train_localizer(cfg, tmp_path / "a", splits=splits)
    rows = list(csv.DictReader(open(tmp_path / "a" / "val_log.csv")))
    assert full.best_val_pck == pytest.approx(max(float(r["score"]) for r in rows), abs=1e-5)
    assert {"lsp_val_pck", "lspet_val_pck"} <= set(rows[0])
    part = train_localizer(cfg, tmp_path / "b", splits=splits, stop_after_steps=3)
    assert part.stopped_early and part.steps == 3
    train_localizer(cfg, tmp_path / "b", resume=True, splits=splits)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["meta"].provenance["step"] == b["meta"].provenance["step"] == 12
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert load_checkpoint(tmp_path / "a" / "best.pt")["meta"].kind == "localizer"
    with pytest.raises(DeepPoseError, match="another config"):
        train_localizer(replace(cfg, optim=OptimConfig(lr=0.5, batch_size=8, warmup_steps=2)), tmp_path / "b",
                        resume=True, splits=splits)


def test_localizer_commands_refuse_a_pose_checkpoint(tmp_path):
    from deeppose.train.localizer_tune import calibrate_localizer, refit_presence

    pose = _tiny_pose(tmp_path / "pose.pt")
    for run in (calibrate_localizer, refit_presence):
        with pytest.raises(DeepPoseError, match="not a person localizer"):
            run(pose, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_the_committed_localizer_recipe_loads_and_builds():
    from deeppose.config import read_config_file
    from deeppose.train.localizer import localizer_config

    recipe = Path(__file__).parents[1] / "configs" / "localizer" / "mobilenet_v2_cpu.yaml"
    cfg = localizer_config(read_config_file(recipe))
    assert cfg.zoom.person_fraction[0] == 0.15 and cfg.lspet_val_size >= 500 and cfg.max_minutes <= 90
    model = build_localizer(cfg.model, 14, cfg.input_size).eval()
    with torch.no_grad():
        joints, logit = model(torch.zeros(2, 3, cfg.input_size, cfg.input_size, dtype=torch.uint8))
    assert joints.shape == (2, 14, 2) and logit.shape == (2,)
    with pytest.raises(DeepPoseError, match="unknown key"):
        localizer_config({"epochz": 3})
    # a recipe in the earlier flat layout reads the same
    flat = localizer_config({"lr": 3e-4, "batch_size": 16, "zoom": {"rotation_deg": 5.0, "whole_prob": 0.1}})
    assert (flat.optim.lr, flat.optim.batch_size, flat.zoom.augment.rotation_deg, flat.zoom.whole_prob) == \
        (3e-4, 16, 5.0, 0.1)


def test_the_localizer_train_command_starts_and_resumes_a_run(lsp_root, lspet_root, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(f"init: ''\nroot: {lsp_root.parent}\ninput_size: 64\nlspet_val_size: 8\nnum_workers: 0\n"
                      "model: {width: 0.35, reduce: 16}\noptim: {batch_size: 8, warmup_steps: 1}\nepochs: 0.002\n")
    run = tmp_path / "run"
    assert main(["localizer", "train", "--config", str(config), "--out", str(run), "--stop-after-steps", "1"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["stopped_early"] and first["steps"] == 1 and first["best"] is None
    assert main(["localizer", "train", "--config", str(config), "--out", str(run), "--resume"]) == 0
    done = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    steps = round(0.002 * ((800 + 9600 - 8) // 8))  # LSP train less 200, LSPET less 8, batches of 8
    assert not done["stopped_early"] and done["steps"] == steps and done["best"] == str(run / "best.pt")
    assert load_checkpoint_meta(run / "best.pt").kind == "localizer"


def load_checkpoint_meta(path: Path) -> ModelMeta:
    from deeppose.models.checkpoint import load_checkpoint

    return load_checkpoint(path)["meta"]


@pytest.mark.slow
def test_the_localizer_recipe_after_training_tune_refit_calibrate_ship(lsp_root, lspet_root, tmp_path, capsys):
    from deeppose.models.checkpoint import load_checkpoint

    loc, pose = _tiny_localizer(tmp_path / "loc.pt"), _tiny_pose(tmp_path / "pose.pt")
    steps = [["tune", "--checkpoint", str(loc), "--pose", str(pose), "--out", str(tmp_path / "tuned.pt")],
             ["refit-presence", "--checkpoint", str(tmp_path / "tuned.pt"), "--views", "24", "--out",
              str(tmp_path / "refit.pt")],
             ["calibrate", "--checkpoint", str(tmp_path / "refit.pt"), "--out", str(tmp_path / "final.pt")]]
    for step in steps:
        assert main(["localizer", *step]) == 0, step
    final = load_checkpoint(tmp_path / "final.pt")["meta"]
    rows = final.provenance["box_rule_selection"]["rows"]
    best = max(rows, key=lambda r: r["score"])
    assert len(rows) == 9 and (final.box_rule.box_scale, final.box_rule.recrops) == (best["box_scale"], best["recrops"])
    assert final.provenance["presence_refit"]["n_views"] == 24
    assert (final.box_rule.a, final.box_rule.b) == (final.provenance["calibration"]["a"],
                                                    final.provenance["calibration"]["b"])
    assert main(["ship", "--checkpoint", str(pose), "--localizer", str(tmp_path / "final.pt"), "--out",
                 str(tmp_path / "pipe.pt")]) == 0
    shipped = Predictor.from_checkpoint(tmp_path / "pipe.pt")
    assert shipped.box_rule == final.box_rule and shipped.recrops == final.box_rule.recrops
