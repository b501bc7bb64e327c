"""LSP test accuracy of a trained stage-1 run (best validation checkpoint), with and without the flip test.

    python benchmarks/accuracy_stage1.py --run runs/mnv2_cpu --name stage1_mobilenet_v2
Writes benchmarks/results/<name>.json and prints a BENCHMARKS.md row.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from common import write_result

from deeppose.data import load_dataset
from deeppose.eval.report import format_pcp_table, score
from deeppose.paths import data_root
from deeppose.serve.predictor import Predictor

PAPER = {"deeppose stage 1": {"upper_arm": None, "lower_arm": None, "upper_leg": None, "lower_leg": None,
                              "mean": 0.54},
         "deeppose stage 3": {"upper_arm": 0.56, "lower_arm": 0.38, "upper_leg": 0.77, "lower_leg": 0.71, "mean": 0.61}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="run folder with best.pt, train_log.csv, val_log.csv")
    parser.add_argument("--name", required=True)
    parser.add_argument("--checkpoint", default="best.pt")
    args = parser.parse_args()
    test = load_dataset("lsp", data_root() / "lsp", "test")
    results = {}
    for flip in (False, True):
        predictor = Predictor.from_checkpoint(args.run / args.checkpoint, flip=flip)
        s = score(predictor.predict_dataset(test, progress=sys.stderr.isatty()), test)
        results["flip" if flip else "plain"] = {k: s[k] for k in ("pcp", "pcp_loose", "pck", "pdj_auc", "n_images",
                                                                  "n_joints")}
    train_rows = list(csv.DictReader(open(args.run / "train_log.csv")))
    val_rows = list(csv.DictReader(open(args.run / "val_log.csv")))
    meta = predictor.meta
    facts = meta.provenance
    cfg = facts["config"]
    training = {"arch": meta.model.arch, "head": meta.model.head, "input_size": meta.input_size,
                "n_parameters": facts.get("n_parameters"), "loss": cfg["loss"], "optimizer": cfg["optim"]["name"],
                "lr": cfg["optim"]["lr"], "batch_size": cfg["optim"]["batch_size"], "data": cfg["data"]["train"],
                "epochs_run": len(val_rows), "epochs_planned": cfg["epochs"], "best_epoch": facts["epoch"],
                "best_val_pck": facts["best_val_pck"],
                "train_minutes": round(float(train_rows[-1]["seconds"]) / 60, 1),
                "train_images_per_s": float(train_rows[-1]["images_per_s"]),
                "val_pck_by_epoch": [float(r["val_pck"]) for r in val_rows],
                "init": cfg["model"].get("init", "")}  # a continued or fine-tuned run starts from this checkpoint
    path = write_result(args.name, {"dataset": "LSP test (1001-2000), all 14 joints scored", "training": training,
                                    "results": results, "paper": PAPER}, " ".join(sys.argv))
    print(format_pcp_table({"ours": results["plain"]["pcp"], "ours + flip": results["flip"]["pcp"],
                            **{k: {c: (v if v is not None else float("nan")) for c, v in p.items()}
                               for k, p in PAPER.items()}}))
    for k in ("plain", "flip"):
        r = results[k]
        print(f"{k}: PCP mean {r['pcp']['mean']:.3f}  PCK@0.2 {r['pck']['0.2']:.3f}  PCK@0.1 {r['pck']['0.1']:.3f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
