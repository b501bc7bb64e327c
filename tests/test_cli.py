import json
import subprocess
import sys

import pytest

from deeppose.cli import main


def test_data_check_json(synthetic_root, capsys, tmp_path):
    assert main(["data", "check", "--dataset", "synthetic", "--root", str(synthetic_root), "--split", "test",
                 "--json", "--sheet", str(tmp_path / "sheet.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_samples"] == 24 and out["split"] == "test" and (tmp_path / "sheet.png").is_file()


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "deeppose", "data", "check", "--dataset", "lsp", "--root",
                           str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("deeppose: error: ") and "missing: LSP folder not found" in proc.stderr


def test_sheet_is_not_half_written_on_error(tmp_path):
    (tmp_path / "annotations.json").write_text(json.dumps({"samples": [
        {"image": "gone.png", "joints": [[1, 2, 2]] * 14}]}))
    assert main(["data", "check", "--dataset", "custom", "--root", str(tmp_path), "--split", "all",
                 "--sheet", str(tmp_path / "s.png")]) == 2
    assert not (tmp_path / "s.png").exists()


def test_data_synth(tmp_path, capsys):
    assert main(["data", "synth", "--root", str(tmp_path / "syn"), "--train", "3", "--val", "0", "--test", "2",
                 "--size", "64"]) == 0
    assert len(list((tmp_path / "syn" / "images").glob("*.png"))) == 5


@pytest.mark.shared_data
@pytest.mark.parametrize("dataset, split, n", [("lsp", "train", 1000), ("lsp", "test", 1000), ("lspet", "all", 9600),
                                               ("mpii", "all", 5)])
def test_data_check_real(shared_data, capsys, dataset, split, n):
    assert main(["data", "check", "--dataset", dataset, "--root", str(shared_data / dataset), "--split", split,
                 "--json", "--no-verify"]) == 0
    assert json.loads(capsys.readouterr().out)["n_samples"] == n


@pytest.fixture(scope="module")
def tiny_checkpoint(synthetic_root, tmp_path_factory):
    """A checkpoint from two CPU steps of `deeppose train` on the synthetic set."""
    data = tmp_path_factory.mktemp("clidata")
    (data / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    run = tmp_path_factory.mktemp("clirun") / "run"
    assert main(["train", f"data.root={data}", "data.train=[synthetic:train]", "data.val_size=16",
                 "data.input_size=32", "data.num_workers=0", "model.arch=small", "optim.batch_size=16", "epochs=1",
                 "--out", str(run)]) == 0
    return run / "best.pt"


def test_eval_writes_the_documented_files(tiny_checkpoint, synthetic_root, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tiny_checkpoint), "--dataset", "synthetic", "--root",
                 str(synthetic_root), "--split", "test", "--flip", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["pcp"]) >= {"upper_arm", "lower_arm", "upper_leg", "lower_leg", "mean"}
    assert set(metrics["pck"]) >= {"0.05", "0.1", "0.15", "0.2"} and metrics["n_images"] == 24
    assert metrics["flip_test"] is True
    # the reported PCK is the Python API's prediction scored: the command adds nothing of its own
    from deeppose.data.synthetic import load_synthetic
    from deeppose.eval.metrics import pck
    from deeppose.serve.predictor import Predictor

    test = load_synthetic(synthetic_root, "test")
    pred = Predictor.from_checkpoint(tiny_checkpoint, flip=True).predict_dataset(test, progress=False)
    assert metrics["pck"]["0.2"] == pytest.approx(pck(pred, test.joints(), test.labelled(), test.skeleton), abs=1e-9)
    assert (tmp_path / "pdj.png").is_file() and (tmp_path / "sheet.png").is_file()
    assert "upper arm" in capsys.readouterr().out


def test_predict_writes_json_and_png(tiny_checkpoint, synthetic_root, tmp_path):
    image = synthetic_root / "images" / "test_00000.png"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), str(image), "--out", str(tmp_path),
                 "--box", "0,0,96,96"]) == 0
    pred = json.loads((tmp_path / "test_00000.png.json").read_text())
    assert [j["name"] for j in pred["joints"]][:2] == ["r_ankle", "r_knee"] and len(pred["joints"]) == 14
    # the JSON's box is in --box's convention (top-left x, y, w, h), so it can be passed back unchanged
    assert pred["box"] == [0.0, 0.0, 96.0, 96.0] and pred["box_source"] == "given"
    assert pred["person_score"] is None and (tmp_path / "test_00000.png.pose.png").is_file()


def test_eval_refuses_a_tampered_checkpoint(tiny_checkpoint, synthetic_root, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    data = bytearray(tiny_checkpoint.read_bytes())
    bad.write_bytes(bytes(data[: len(data) - 100]))
    assert main(["eval", "--checkpoint", str(bad), "--dataset", "synthetic", "--root", str(synthetic_root),
                 "--out", str(tmp_path / "ev")]) == 2
    assert "bad.pt" in capsys.readouterr().err and not (tmp_path / "ev").exists()


def test_train_to_a_budget_in_minutes(synthetic_root, tmp_path, capsys, monkeypatch):
    from deeppose.train import budget

    data = tmp_path / "data"
    data.mkdir()
    (data / "synthetic").symlink_to(synthetic_root, target_is_directory=True)
    args = ["train", f"data.root={data}", "data.train=[synthetic:train]", "data.val_size=16", "data.input_size=32",
            "data.num_workers=0", "model.arch=small", "optim.batch_size=16", "epochs=99"]
    run = tmp_path / "run"
    assert main([*args, "--budget-minutes", "0", "--out", str(run)]) == 2
    assert "positive number of minutes" in capsys.readouterr().err and not run.exists()
    monkeypatch.setattr(budget, "other_cores", lambda before, after: 1.5)
    assert main([*args, "--budget-minutes", "0.05", "--out", str(run)]) == 2
    assert "the machine is busy" in capsys.readouterr().err and not run.exists()
    monkeypatch.setattr(budget, "other_cores", lambda before, after: 0.0)
    monkeypatch.setattr(budget, "probe_images_per_s", lambda cfg, train: 6.0)
    assert main([*args, "--budget-minutes", "0.5", "--stop-after-steps", "1", "--out", str(run)]) == 0
    n_train = int(capsys.readouterr().out.split("budget: ")[1].split(" images fit")[0].split(" of ")[1])
    planned = budget.budget_epochs(6.0, 0.5, n_train)
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == planned != 99 and planned > 1 and saved["max_minutes"] == pytest.approx(0.75)
    # a resumed run keeps the schedule it started with, whatever the machine or the budget now
    monkeypatch.setattr(budget, "probe_images_per_s", lambda cfg, train: 10.0)
    assert main([*args, "--budget-minutes", "5", "--resume", "--out", str(run)]) == 0
    assert "as planned when the run started" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["epochs"] == planned and (run / "best.pt").is_file()
    (run / "config.json").write_text("{")
    assert main([*args, "--budget-minutes", "5", "--resume", "--out", str(run)]) == 2
    assert "config.json: not a run config with its epochs" in capsys.readouterr().err


def test_predict_never_writes_over_an_input_nor_two_outputs_on_one_name(tiny_checkpoint, synthetic_root, tmp_path,
                                                                         capsys):
    from deeppose.data.io import read_image
    from deeppose.visualize import save_image

    picture = read_image(synthetic_root / "images" / "test_00000.png")
    for rel in ("x/a.png", "x/a.jpg", "y/a.png", "x/sub/b.webp"):  # the same name twice, a subfolder, webp
        save_image(tmp_path / rel, picture)
    (tmp_path / "x" / "notes.txt").write_text("not an image")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    ck = ["--checkpoint", str(tiny_checkpoint)]
    assert main(["predict", str(tmp_path / "x"), str(tmp_path / "y"), *ck, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 4 predictions (8 files)" in printed and "skipped" in printed and "notes.txt" in printed
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(f"{k}{s}" for k in ("x/a.png", "x/a.jpg", "y/a.png", "x/sub/b.webp")
                             for s in (".json", ".pose.png"))
    assert all(p.read_bytes() == data for p, data in before.items())  # every input unchanged
    # writing into an input folder, or over a file, is refused before any work
    assert main(["predict", str(tmp_path / "x"), *ck, "--out", str(tmp_path / "x" / "preds")]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "x"), *ck, "--out", str(tmp_path / "x" / "notes.txt")]) == 2
    assert "--out is a file" in capsys.readouterr().err
    assert not (tmp_path / "x" / "preds").exists() and all(p.read_bytes() == d for p, d in before.items())


def test_predict_stops_at_a_bad_image_or_skips_it(tiny_checkpoint, synthetic_root, tmp_path, capsys):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(synthetic_root / "images" / "test_00000.png", folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    shutil.copy(synthetic_root / "images" / "test_00001.png", folder / "c.png")
    ck = ["--checkpoint", str(tiny_checkpoint)]
    assert main(["predict", str(folder), *ck, "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("b.png: corrupt or unsupported image (could not decode)") and "\n" not in err
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["a.png.json", "a.png.pose.png"]  # whole files
    assert main(["predict", str(folder), *ck, "--out", str(tmp_path / "o2"), "--skip-bad"]) == 0
    assert "wrote 2 predictions (4 files)" in capsys.readouterr().out
    assert not list((tmp_path / "o1").glob(".*")) and not list((tmp_path / "o2").glob(".*"))  # no temporaries


def test_every_prediction_follows_the_versioned_schema(tiny_checkpoint, synthetic_root, tmp_path, capsys):
    import jsonschema

    from deeppose import __version__
    from deeppose.serve.records import SCHEMA, SCHEMA_VERSION

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert main(["predict", str(synthetic_root / "images" / "test_00003.png"), "--checkpoint", str(tiny_checkpoint),
                 "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "test_00003.png.json").read_text())
    assert record["schema_version"] == SCHEMA_VERSION
    jsonschema.validate(record, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "box": record["box"][:3]}, schema)  # the schema does refuse a bad record
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith(f"deeppose {__version__}; default model ") and __version__ != "unknown"


def test_predict_takes_one_box_per_image_from_a_file(tiny_checkpoint, synthetic_root, tmp_path, capsys):
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        shutil.copy(synthetic_root / "images" / "test_00000.png", folder / name)
    (tmp_path / "boxes.json").write_text(json.dumps({"a.png": [10, 20, 30, 40]}))
    ck = ["--checkpoint", str(tiny_checkpoint)]
    boxes = ["--boxes", str(tmp_path / "boxes.json")]
    assert main(["predict", str(folder), *ck, "--out", str(tmp_path / "o"), *boxes]) == 0
    a = json.loads((tmp_path / "o" / "a.png.json").read_text())
    b = json.loads((tmp_path / "o" / "b.png.json").read_text())
    assert a["box"] == [10.0, 20.0, 30.0, 40.0] and a["box_source"] == "given" and b["box_source"] == "image"
    (tmp_path / "bad.json").write_text(json.dumps({"a.png": [1, 2, 3]}))
    bad = ["--boxes", str(tmp_path / "bad.json")]
    assert main(["predict", str(folder), *ck, "--out", str(tmp_path / "o2"), *bad]) == 2
    assert "bad.json: not a boxes file ('a.png': expected [x, y, w, h]" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_predict_keeps_a_linked_image_in_its_place(tiny_checkpoint, synthetic_root, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "linked.png").symlink_to(synthetic_root / "images" / "test_00002.png")
    assert main(["predict", str(folder), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "linked.png.json").is_file() and (folder / "linked.png").is_symlink()


def test_an_output_folder_that_cannot_be_made_is_one_line_before_any_prediction(tiny_checkpoint, synthetic_root,
                                                                                tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    image = synthetic_root / "images" / "test_00000.png"
    for command in (["predict", str(image)], ["eval", "--dataset", "synthetic", "--root", str(synthetic_root)]):
        assert main([*command, "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "a_file" / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"deeppose: error: {tmp_path / 'a_file' / 'out'}: --out cannot be written (")
        assert "\n" not in err, command


def test_a_full_disk_mid_run_is_one_line_and_leaves_whole_files(tiny_checkpoint, synthetic_root, tmp_path, capsys,
                                                                monkeypatch):
    import errno

    from deeppose.serve import files

    saved = []

    def save_image(path, image):  # the second picture meets a full disk
        if saved:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        saved.append(path)
        return real(path, image)

    real = files.save_image
    monkeypatch.setattr(files, "save_image", save_image)
    images = [str(synthetic_root / "images" / f"test_0000{i}.png") for i in range(3)]
    assert main(["predict", *images, "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"deeppose: error: {tmp_path / 'o' / 'test_00001.png.pose.png'}: No space left on device"
    written = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert written == ["test_00000.png.json", "test_00000.png.pose.png", "test_00001.png.json"]
    assert json.loads((tmp_path / "o" / "test_00001.png.json").read_text())["joints"]  # whole, not torn


def test_the_output_check_leaves_nothing_behind(tmp_path):
    from deeppose.errors import DeepPoseError
    from deeppose.files import writable_folder

    assert writable_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert list(tmp_path.iterdir()) == []  # made, probed and removed again: a run that fails leaves no folder
    (tmp_path / "kept").mkdir()
    writable_folder(tmp_path / "kept")
    assert (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(DeepPoseError, match="is a file"):
        writable_folder(tmp_path / "f")
