import json

import pytest

from deeppose.cli import main


@pytest.mark.slow
def test_demo_trains_beats_the_mean_pose_and_writes_the_report(tmp_path):
    """A fixed-seed run of 400 steps (under a minute) must clearly beat predicting the mean training pose."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "400", "--seed", "0"]) == 0
    for name in ("metrics.json", "pdj.png", "sheet.png", "train_log.csv", "model.pt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 200 and set(metrics["pcp"]) >= {"upper_arm", "lower_arm", "upper_leg",
                                                                   "lower_leg", "mean"}
    assert metrics["pck"]["0.2"] > metrics["baseline"]["pck"]["0.2"] + 0.06
    assert metrics["pcp"]["mean"] > metrics["baseline"]["pcp"]["mean"] + 0.03


def test_demo_rejects_a_non_positive_budget(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--minutes", "0"]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err
