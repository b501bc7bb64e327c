import csv
import json

import pytest

from deeppose.cli import main


@pytest.mark.slow
def test_demo_trains_beats_the_mean_pose_and_writes_the_report(tmp_path):
    """A fixed-seed run of 14 epochs (under a minute) must clearly beat predicting the mean training pose."""
    out = tmp_path / "demo"
    assert main(["demo", "--train", "--out", str(out), "--epochs", "14", "--seed", "0"]) == 0
    for name in ("metrics.json", "pdj.png", "sheet.png", "run/train_log.csv", "run/best.pt", "baseline/metrics.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 200 and set(metrics["pcp"]) >= {"upper_arm", "lower_arm", "upper_leg",
                                                                   "lower_leg", "mean"}
    assert metrics["pck"]["0.2"] > metrics["baseline"]["pck"]["0.2"] + 0.06
    assert metrics["pcp"]["mean"] > metrics["baseline"]["pcp"]["mean"] + 0.03
    # The validation error falls during training: best validation PCK well above the first epoch's.
    rows = list(csv.DictReader(open(out / "run" / "val_log.csv")))
    assert len(rows) == 14 and max(float(r["val_pck"]) for r in rows) > float(rows[0]["val_pck"]) + 0.1


def test_demo_rejects_a_non_positive_budget(tmp_path, capsys):
    assert main(["demo", "--train", "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert "--epochs must be positive" in capsys.readouterr().err


@pytest.mark.shared_data
@pytest.mark.slow
def test_photo_demo_finds_the_people_and_nobody(shared_data, tmp_path, capsys):
    """The shipped model on the demo's photos: someone in every photo of people, several people in the photos of
    several, nobody in the three without."""
    out = tmp_path / "photos"
    assert main(["demo", "--out", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "found" in ln]
    assert len(lines) == 16 and (out / "sheet.png").is_file() and (out / "15.json").is_file()
    import jsonschema

    from deeppose.serve.records import SCHEMA

    schema = json.loads(SCHEMA.read_text())
    records = [json.loads((out / f"{k:02d}.json").read_text()) for k in range(16)]
    for record in records:
        jsonschema.validate(record, schema)
    assert records[0]["image"].endswith("im1008.jpg") and "image" not in records[15]
    assert [r["person_found"] for r in records[13:]] == [False, False, False]
    assert all(r["people"] == [] for r in records[13:])
    people, nobody = lines[:13], lines[13:]
    assert sum(" found (best person_score" in ln for ln in people) >= 12
    assert all(len(r["people"]) >= 2 for r in records[11:13])  # the two photos of several people
    assert all("nobody found" in ln for ln in nobody)
