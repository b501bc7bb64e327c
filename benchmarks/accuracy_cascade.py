"""LSP test accuracy of a trained cascade, stage by stage (DeepPose Table 1), with and without the flip test,
and the training time of each stage.

    python benchmarks/accuracy_cascade.py --run runs/cascade_cpu --name cascade_mobilenet_v2
Writes benchmarks/results/<name>.json and prints the PCP table by stage.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict
from pathlib import Path

from common import RESULTS, write_result

from deeppose.data import load_dataset
from deeppose.eval.report import format_pcp_table, score
from deeppose.models.meta import ModelMeta
from deeppose.paths import data_root
from deeppose.serve.predictor import Predictor

# DeepPose Table 1, LSP, strict PCP: upper arm, lower arm, upper leg, lower leg, mean
PAPER = {f"DeepPose-st{s}": dict(zip(("upper_arm", "lower_arm", "upper_leg", "lower_leg", "mean"), row))
         for s, row in ((1, (0.50, 0.27, 0.74, 0.65, 0.54)), (2, (0.56, 0.36, 0.78, 0.70, 0.60)),
                        (3, (0.56, 0.38, 0.77, 0.71, 0.61)))}


def _stage_training(run: Path, meta: ModelMeta, stage1_result: dict) -> list[dict]:
    """Per stage: the time its training took and its validation PCK, from the run folder's logs (stage 1: from
    the result file of its own run)."""
    rows = [{"stage": 1, "best_val_pck": meta.stage1.provenance.get("best_val_pck"),
             "train_minutes": stage1_result["training"]["train_minutes"],
             "note": f"the stage-1 run of {stage1_result['benchmark']}"}]
    for refiner in meta.refiners:
        r = refiner.provenance
        s = r["stage"]
        val = list(csv.DictReader(open(run / f"stage{s}" / "val_log.csv")))
        stats = json.loads((run / f"stats_s{s}.json").read_text())
        rows.append({"stage": s, "best_val_pck": r.get("best_val_pck"),
                     "previous_val_pck": r.get("previous_val_pck"),
                     "train_minutes": round(float(val[-1]["seconds"]) / 60, 1), "epochs_run": len(val),
                     "val_pck_by_epoch": [float(v["val_pck"]) for v in val], "n_parameters": r.get("n_parameters"),
                     "stats_quantile": stats.get("quantile"), "previous_train_pck": stats.get("train_pck")})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="cascade run folder")
    parser.add_argument("--name", required=True)
    parser.add_argument("--checkpoint", default="cascade.pt")
    parser.add_argument("--stage1-result", default="stage1_mobilenet_v2_softargmax",
                        help="result file of the best stage-1-only model, to compare with")
    args = parser.parse_args()
    test = load_dataset("lsp", data_root() / "lsp", "test")
    results = {}
    for flip in (False, True):
        predictor = Predictor.from_checkpoint(args.run / args.checkpoint, flip=flip)
        pred = predictor.predict_dataset(test, progress=sys.stderr.isatty(), all_stages=True)
        per_stage = []
        for s in range(pred.shape[1]):
            m = score(pred[:, s], test)
            per_stage.append({"stage": s + 1, **{k: m[k] for k in ("pcp", "pcp_loose", "pck", "pdj_auc", "n_images",
                                                                   "n_joints")}})
        results["flip" if flip else "plain"] = per_stage
    meta = predictor.meta
    plain = results["plain"]
    stage1_result = json.loads((RESULTS / f"{args.stage1_result}.json").read_text())
    best_stage1 = stage1_result["results"]["plain"]["pcp"]["mean"]
    summary = {"stage2_minus_stage1_pcp": round(plain[1]["pcp"]["mean"] - plain[0]["pcp"]["mean"], 4),
               "cascade_pcp": plain[-1]["pcp"]["mean"], "best_stage1_only_pcp": best_stage1,
               "target_stage2_gain": 0.04}
    cascade = {"stages": meta.stages, **asdict(meta.cascade), "refiner_model": asdict(meta.refiners[0].model)}
    path = write_result(args.name, {"dataset": "LSP test (1001-2000), all 14 joints scored", "cascade": cascade,
                                    "training": _stage_training(args.run, meta, stage1_result), "results": results,
                                    "summary": summary, "paper": PAPER}, " ".join(sys.argv))
    print(format_pcp_table({**{f"st{r['stage']}": r["pcp"] for r in plain},
                            **{f"st{r['stage']} + flip": r["pcp"] for r in results["flip"]}, **PAPER}))
    print(json.dumps(summary))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
