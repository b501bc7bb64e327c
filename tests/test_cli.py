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
