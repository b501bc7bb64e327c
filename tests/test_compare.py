"""The head comparison: its spec, its epoch budget, and a tiny real comparison on LSP (train, score, time, plot)."""

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deeppose.cli import main
from deeppose.config import load_config
from deeppose.errors import DeepPoseError
from deeppose.eval.comparison import format_rows, plot_comparison
from deeppose.heads import objective
from deeppose.models.factory import count_parameters
from deeppose.train import budget, compare
from deeppose.train.budget import budget_epochs
from deeppose.train.compare import architecture_predictors, complete, load_rows, load_spec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["data.input_size=64", "data.val_size=20", "data.train=[lsp:train]", "data.num_workers=0", "model.reduce=16",
        "optim.batch_size=16", "checkpoint_minutes=100"]


def write_spec(folder, entries, **extra):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump({"model": {"arch": "mobilenet_v2", "stride": 8}}))
    spec = {"base": "base.yaml", "budget_minutes": 0.05, "entries": entries, **extra}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder / "spec.yaml"


def test_spec_errors_name_the_file(tmp_path):
    with pytest.raises(DeepPoseError, match="comparison spec not found"):
        load_spec(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: x.yaml\nentries: [{label: no name}]\n")
    with pytest.raises(DeepPoseError, match="bad.yaml: malformed comparison spec"):
        load_spec(bad)
    twice = write_spec(tmp_path / "twice", [{"name": "a"}, {"name": "a"}])
    with pytest.raises(DeepPoseError, match="distinct names"):
        load_spec(twice)
    spec = load_spec(write_spec(tmp_path / "ok", [{"name": "a", "overrides": ["loss=l2"]}],
                                references=[{"label": "R", "pck_0.2": 0.8, "pcp": 0.7, "ms_per_image": 6}]))
    assert spec.entries[0].overrides == ["loss=l2"] and spec.base == tmp_path / "ok" / "base.yaml"
    assert spec.cascade is None and spec.references[0]["pck_0.2"] == 0.8
    assert load_spec(CONFIGS / "compare" / "heads_mobilenet_v2.yaml").references[0]["label"].startswith("MoveNet")


def test_the_budget_sets_epochs_to_a_hundredth():
    assert budget_epochs(100.0, 10, 10_000, efficiency=1.0) == 6
    assert budget_epochs(41.2, 15, 10_400) == 3.03 and budget_epochs(36.5, 15, 10_400) == 2.68  # not 3 and 2
    assert budget_epochs(1.0, 1, 10_000) == 0.01  # at least a hundredth


def test_a_probe_on_a_busy_machine_plans_nothing(lsp_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPPOSE_DATA", str(lsp_root.parent))
    monkeypatch.setattr(budget, "probe_images_per_s", lambda cfg, train: 50.0)
    monkeypatch.setattr(budget, "other_cores", lambda before, after: 1.3)
    spec = load_spec(write_spec(tmp_path / "spec", [{"name": "fc", "overrides": TINY}]))
    out = tmp_path / "out"
    with pytest.raises(DeepPoseError, match=r"out/fc: the machine is busy: other processes kept 1.3 CPU cores"):
        compare.stage1_row(spec, spec.entries[0], out, test=None, progress=False)
    assert not out.exists()
    monkeypatch.setattr(budget, "other_cores", lambda before, after: 0.1)
    monkeypatch.setattr(compare, "fit", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("planned")))
    with pytest.raises(RuntimeError, match="planned"):
        compare.stage1_row(spec, spec.entries[0], out, test=None, progress=False)
    plan = json.loads((out / "fc" / "plan.json").read_text())
    assert plan["other_cores"] == 0.1 and plan["probe_images_per_s"] == 50.0
    assert plan["epochs"] == budget_epochs(50.0, spec.budget_minutes, plan["n_train"]) < 1  # part of an epoch


def test_a_spec_with_epochs_gives_every_entry_that_many_without_a_probe(tmp_path, monkeypatch):
    spec = load_spec(write_spec(tmp_path / "spec", [{"name": "fc", "overrides": TINY}], epochs=2))
    assert spec.epochs == 2
    monkeypatch.setattr(budget, "probe_images_per_s", lambda cfg, train: pytest.fail("probed"))
    trained = {}

    def fit(cfg, *args, **kwargs):
        trained["epochs"] = cfg.epochs
        raise RuntimeError("trained")

    monkeypatch.setattr(compare, "fit", fit)
    with pytest.raises(RuntimeError, match="trained"):
        compare.stage1_row(spec, spec.entries[0], tmp_path / "out", test=None, progress=False)
    assert trained == {"epochs": 2}
    row = {"name": "fc", "overrides": TINY, "budget_minutes": spec.budget_minutes, "plan": {"epochs": 2}}
    assert complete(row, spec, spec.entries[0]) and not complete({**row, "plan": {"epochs": 3}}, spec, spec.entries[0])
    for bad in (0, -1, "nan"):
        with pytest.raises(DeepPoseError, match="spec.yaml: epochs must be a positive number"):
            load_spec(write_spec(tmp_path / f"bad{bad}", [{"name": "fc"}], epochs=bad))


def _row(name, pck, ms, cascade=None):
    r = {"pck": {"0.05": pck / 4, "0.1": pck / 2, "0.2": pck}, "pcp": {"mean": pck - 0.05}, "ms_per_image": ms,
         "n_parameters": 2_300_000}
    row = {"name": name, "label": name.upper(), "train_minutes": 15.0, "stage1": r}
    if cascade:
        row["cascade"] = {**r, "pck": {"0.05": 0.1, "0.1": 0.3, "0.2": cascade}, "ms_per_image": ms * 1.8,
                          "max_minutes_stage2": 8}
    return row


def test_the_table_and_the_plot(tmp_path):
    rows = [_row("dsnt", 0.7, 7.0, cascade=0.72), _row("fc", 0.6, 5.0)]
    rows[0]["stage1"]["confidence"] = {"auroc": 0.7512}
    refs = [{"label": "MoveNet", "pck_0.2": 0.828, "pcp": 0.785, "ms_per_image": 5.9, "source": ""}]
    table = format_rows(rows, refs)
    assert "| MoveNet (reference) | – | – | 0.828 | 0.785 | 5.9 | – | – | – |" in table
    assert "| DSNT | 0.175 | 0.350 | 0.700 | 0.650 | 7.0 | 2.30M | 15.0 | 0.751 |" in table
    assert "| FC | 0.150 | 0.300 | 0.600 | 0.550 | 5.0 | 2.30M | 15.0 | – |" in table
    assert "| DSNT + cascade | 0.100 | 0.300 | 0.720 |" in table and "FC + cascade" not in table
    path = plot_comparison(rows, tmp_path / "plot.png", "test", refs)
    assert path.stat().st_size > 10_000 and not list(tmp_path.glob(".*"))


@pytest.mark.slow
def test_a_tiny_comparison_on_lsp(lsp_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEEPPOSE_DATA", str(lsp_root.parent))
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "cascade.yaml").write_text(yaml.safe_dump({
        "data": {"input_size": 64, "val_size": 20, "train": ["lsp:train"], "num_workers": 0},
        "cascade": {"stages": 2, "crop_size": 16, "source_size": 64, "draws": 1, "epochs": 1,
                    "joints": ["l_wrist", "r_wrist"], "optim": {"batch_size": 16}}}))
    spec = write_spec(folder, [
        {"name": "heatmap", "label": "Heatmap", "overrides": [*TINY, "model.head=heatmap", "loss=mse"]},
        {"name": "fc", "label": "FC", "overrides": [*TINY, "model.head=fc", "model.stride=32", "loss=l2"],
         "cascade": False}], cascade="cascade.yaml", cascade_minutes=0.05)
    out = tmp_path / "out"
    assert main(["compare", "--spec", str(spec), "--out", str(out), "--only", "fc"]) == 0
    assert (out / "fc" / "result.json").is_file() and not (out / "heatmap").exists()
    assert main(["compare", "--spec", str(spec), "--out", str(out)]) == 0
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["heatmap", "fc"]
    assert "cascade" in rows[0] and "cascade" not in rows[1]
    for r in (rows[0]["stage1"], rows[0]["cascade"], rows[1]["stage1"]):
        assert r["pck"]["0.05"] <= r["pck"]["0.1"] <= r["pck"]["0.2"] and r["n_parameters"] > 1e6
    assert rows[0]["cascade"]["n_parameters"] > rows[0]["stage1"]["n_parameters"]
    assert (out / "comparison.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "| Heatmap + cascade |" in printed
    # finished entries are kept: a second call trains nothing and gives the same rows
    mtime = (out / "fc" / "result.json").stat().st_mtime
    assert main(["compare", "--spec", str(spec), "--out", str(out)]) == 0
    assert (out / "fc" / "result.json").stat().st_mtime == mtime
    assert main(["compare", "--spec", str(spec), "--out", str(out), "--only", "nope"]) != 0
    # a fresh machine keeps no run folder: the rows of the results file carry the comparison on
    results, fresh = out / "comparison.json", tmp_path / "fresh"
    assert main(["compare", "--spec", str(spec), "--out", str(fresh), "--results", str(results)]) == 0
    assert not fresh.exists() and json.loads(results.read_text())["rows"] == rows
    # speed again from the architectures alone, with the trained models' sizes
    assert main(["compare", "--spec", str(spec), "--out", str(fresh), "--results", str(results), "--retime"]) == 0
    timed = json.loads(results.read_text())["rows"]
    assert timed[0]["cascade"]["timed"].startswith("architecture") and timed[1]["stage1"]["timed"]
    # the run folder's older rows do not undo the re-timing
    assert main(["compare", "--spec", str(spec), "--out", str(out), "--results", str(results), "--report-only"]) == 0
    assert json.loads(results.read_text())["rows"] == timed
    loaded = load_spec(spec)
    for entry, row in zip(loaded.entries, rows, strict=True):
        for key, predictor in architecture_predictors(loaded, entry).items():
            assert count_parameters(predictor.model) == row[key]["n_parameters"]


def test_results_file_errors_and_complete_rows(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"rows": [{"label": "no name"}]}')
    with pytest.raises(DeepPoseError, match="results.json.*not a comparison results file"):
        load_rows(bad)
    bad.write_text("{")
    with pytest.raises(DeepPoseError, match="not a comparison results file"):
        load_rows(bad)
    assert load_rows(tmp_path / "none.json") == []
    spec = load_spec(write_spec(tmp_path, [{"name": "a", "overrides": ["model.head=fc"]}], cascade="c.yaml",
                                cascade_minutes=1))
    entry = spec.entries[0]
    row = {"name": "a", "overrides": ["model.head=fc"], "budget_minutes": spec.budget_minutes, "stage1": {}}
    assert not complete(row, spec, entry)  # its cascade is missing
    assert complete({**row, "cascade": {}}, spec, entry)
    assert not complete({**row, "cascade": {}, "budget_minutes": spec.budget_minutes + 1}, spec, entry)
    assert not complete({**row, "cascade": {}, "overrides": []}, spec, entry)
    assert complete(row, spec, replace(entry, cascade=False))


@pytest.mark.parametrize("path", sorted((CONFIGS / "compare").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_comparison_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.references and len(spec.entries) >= 8
    for entry in spec.entries:
        cfg = load_config(spec.base, entry.overrides)
        objective(cfg.model.head, cfg.loss, cfg.heatmap)  # head and loss agree
        predictors = architecture_predictors(spec, entry)  # every entry builds, alone and with its cascade
        assert set(predictors) == {"stage1", "cascade"} if entry.cascade else {"stage1"}


class _Constant(torch.nn.Module):
    """A 'model' that puts every joint at the same place in its crop, whatever the image: u (K, 2)."""

    def __init__(self, u: torch.Tensor, sleep_s: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("u", u)
        self.sleep_s = sleep_s

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        time.sleep(self.sleep_s)
        return self.u.expand(len(images), -1, -1).clone()


def test_a_comparison_row_scores_a_model_of_known_pck(synthetic_root, tmp_path, monkeypatch):
    from deeppose.data.io import read_image
    from deeppose.data.synthetic import load_synthetic
    from deeppose.data.transforms import sample_box
    from deeppose.eval import comparison
    from deeppose.geometry import denormalize, diam, normalize
    from deeppose.models.meta import ModelMeta
    from deeppose.serve.predictor import Predictor

    test = load_synthetic(synthetic_root, "test")
    boxes = [sample_box(s, read_image(s.image_path).shape) for s in test.samples]
    u = torch.from_numpy(np.mean([normalize(s.joints, b) for s, b in zip(test.samples, boxes)], axis=0)).float()
    predictor = Predictor(_Constant(u), ModelMeta("stage1", "lsp14", 14, 32))
    monkeypatch.setattr(comparison.Predictor, "from_checkpoint", lambda path: predictor)
    row = comparison.score_row(tmp_path / "any.pt", test, threads=1, progress=False)
    # by hand: the constant pose placed in each image's (squared) box, a joint right within 0.2 torso diameters
    right = total = 0
    for s, box in zip(test.samples, boxes):
        pred = denormalize(u.double().numpy(), box)
        d = diam(s.joints.astype(np.float64), s.labelled, test.skeleton)
        if np.isfinite(d):
            ok = np.linalg.norm(pred - s.joints, axis=-1) <= 0.2 * d
            right, total = right + int(ok[s.labelled].sum()), total + int(s.labelled.sum())
    assert 0 < right < total and row["pck"]["0.2"] == pytest.approx(right / total, abs=1e-9)


def test_timing_measures_the_model(monkeypatch):
    from deeppose.eval.comparison import time_model
    from deeppose.models.meta import ModelMeta
    from deeppose.serve.predictor import Predictor

    slow = Predictor(_Constant(torch.zeros(14, 2), sleep_s=0.02), ModelMeta("stage1", "lsp14", 14, 32))
    assert 20 <= time_model(slow, threads=1, repeats=3) < 200
