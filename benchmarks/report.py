"""Render BENCHMARKS.md from the committed result files in benchmarks/results/ (no measuring here).

    python benchmarks/report.py            # rewrites BENCHMARKS.md at the repository root
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from common import RESULTS

from deeppose.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]
LIMBS = ("upper_arm", "lower_arm", "upper_leg", "lower_leg", "mean")
LIMB_NAMES = ("upper arm", "lower arm", "upper leg", "lower leg")
# the columns of `_score_cells`
SCORE_COLUMNS = (*LIMB_NAMES, "**PCP mean**", "PCK@0.1", "**PCK@0.2**", "PCP / PCK@0.2 with flip")


def _load(prefix: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{prefix}*.json"))]


def _machine(r: dict) -> str:
    m = r["machine"]
    gpu = m.get("gpu") or "no GPU"
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {gpu}, torch {m['torch']}"


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _provenance(rows: list[dict]) -> list[str]:
    lines = ["", "| result file | date | commit | machine | command |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| `{r['benchmark']}.json` | {r['date']} | {r['commit']} | {_machine(r)} | `{r['command']}` |"
              for r in rows]
    return lines


def _header(*columns: str) -> list[str]:
    """A Markdown table's header and separator rows."""
    return ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]


def _score_cells(plain: dict, flip: dict) -> str:
    """The LSP test cells a stage-1 row and a cascade-stage row share: PCP per limb and mean, PCK@0.1, PCK@0.2,
    and PCP / PCK@0.2 with the flip test."""
    return (" | ".join(_f(plain["pcp"][k]) for k in LIMBS[:4]) + f" | **{_f(plain['pcp']['mean'])}** | "
            f"{_f(plain['pck']['0.1'])} | **{_f(plain['pck']['0.2'])}** | {_f(flip['pcp']['mean'])} / "
            f"{_f(flip['pck']['0.2'])}")


def _section(title: str, description: str, *columns: str) -> list[str]:
    """A section's title, its description and its table's header."""
    return [f"## {title}", "", description, "", *_header(*columns)]


def accuracy_section(rows: list[dict]) -> list[str]:
    out = _section("Stage 1 on LSP test (1001–2000, all 14 joints scored)",
                   "Trained on LSP train (minus 200 validation images) + all of LSPET on 2 CPU cores; the checkpoint "
                   "is the best on validation PCK@0.2. PCP is strict PCP; PCK is PDJ at the given fraction of the "
                   "torso diameter.", "model", "head", "input", "params", "train min", "epochs", *SCORE_COLUMNS)
    for r in rows:
        t, plain, flip = r["training"], r["results"]["plain"], r["results"]["flip"]
        epochs = f"{t.get('epochs_run', t.get('epochs_done'))}/{t.get('epochs_planned', '?')}"
        minutes = f"{t['train_minutes']}, from `{t['init']}`" if t.get("init") else t["train_minutes"]
        out.append(f"| {t['arch']} (`{r['benchmark']}`) | {t.get('head', 'fc')} | {t['input_size']} | "
                   f"{t['n_parameters'] / 1e6:.2f}M | {minutes} | {epochs} | {_score_cells(plain, flip)} |")
    out += _paper_rows(rows, lambda name, p: f"| DeepPose paper, {name.removeprefix('deeppose ')} | fc | 220 | "
                       "≈40M (paper) | – | – | " + " | ".join(_f(p[k], 2) for k in LIMBS[:4]) +
                       f" | **{_f(p['mean'], 2)}** | – | – | – |")
    return out + _provenance(rows)


def _paper_rows(rows: list[dict], line: Callable[[str, dict], str]) -> list[str]:
    """The DeepPose paper's Table 1 rows that the first result file carries ("paper"), a `line(name, pcp)` each."""
    return [line(name, p) for name, p in rows[0]["paper"].items()] if rows else []


def cascade_section(rows: list[dict]) -> list[str]:
    out = _section("DeepPose cascade on LSP test, stage by stage (Table 1)",
                   "Stage 1 is the shipped stage-1 model; each refinement stage regresses each refined joint's "
                   "displacement inside its joint box from a sub-image (Eq. 6, 7) and trains on boxes simulated from "
                   "the previous stage's errors on the training images (Eq. 8). Strict PCP; PCK@0.2 of the torso "
                   "diameter.", "run", "stage", *SCORE_COLUMNS, "stage training min")
    for r in rows:
        minutes = {t["stage"]: t["train_minutes"] for t in r["training"]}
        for plain, flip in zip(r["results"]["plain"], r["results"]["flip"]):
            st = plain["stage"]
            out.append(f"| `{r['benchmark']}` | st{st} | {_score_cells(plain, flip)} | {minutes.get(st, '–')} |")
        sm = r["summary"]
        out += ["", f"`{r['benchmark']}`: stage 2 − stage 1 = **{sm['stage2_minus_stage1_pcp']:+.3f} PCP** (target "
                    f"≥ +{sm['target_stage2_gain']:.2f}); the cascade's {sm['cascade_pcp']:.3f} against the best "
                    f"stage-1-only model's {sm['best_stage1_only_pcp']:.3f}. Geometry: σ = {r['cascade']['sigma']}, "
                    f"{r['cascade']['crop_size']} px sub-images cut from the box at {r['cascade']['source_size']} px; "
                    f"refined joints: {_joint_list(r['cascade'].get('joints', 'all'))}.", ""]
    if rows:
        out += _header("DeepPose paper (Table 1)", *LIMB_NAMES, "PCP mean")
    out += _paper_rows(rows, lambda name, p: f"| {name} | " + " | ".join(_f(p[k], 2) for k in LIMBS) + " |")
    return out + _provenance(rows)


def _joint_list(joints: list[str] | str) -> str:
    """'all 14' for a cascade that refines every joint, else the names."""
    return joints if isinstance(joints, str) else ("all 14" if len(joints) == 14 else ", ".join(joints))


def throughput_section(rows: list[dict]) -> list[str]:
    out = ["## Training throughput", "",
           "End to end (DataLoader with augmentation and crops → forward + backward + step) against the same step "
           "on one batch already in memory. Target ratio ≥ 0.8.", "",
           *_header("model", "input", "batch", "workers", "end to end img/s", "in memory img/s", "ratio",
                    "loader alone img/s")]
    for r in rows:
        out.append(f"| {r['arch']} (`{r['benchmark']}`) | {r['input_size']} | {r['batch_size']} | {r['num_workers']} | "
                   f"{r['end_to_end_images_per_s']} | {r['in_memory_images_per_s']} | **{r['ratio']}** | "
                   f"{r['loader_single_process_images_per_s']} |")
    return out + _provenance(rows)


def inference_section(rows: list[dict]) -> list[str]:
    out = ["## Inference", "",
           "Median over repeats, each case in a fresh process (peak RSS is that process's). `crops`: the network "
           "on ready uint8 crops; `image`: `Predictor.predict` on a 200×200 RGB array (crop warp included, "
           "JPEG decoding not).", "",
           *_header("checkpoint", "case", "stages", "batch", "threads", "flip", "ms / image", "images / s",
                    "peak RSS MiB")]
    cascades = []
    for r in rows:
        for c in r["cases"]:
            out.append(f"| `{r['benchmark']}` | {c.get('case', 'crops')} | {c.get('stages', 1)} | {c['batch']} | "
                       f"{c['threads']} | {'yes' if c['flip'] else 'no'} | {c['ms_per_image']:.2f} | "
                       f"{c['images_per_s']} | {c['peak_rss_mib']} |")
            if "ratio_to_stage1" in c:
                cascades.append(f"| `{r['benchmark']}` | {c['case']} | {c['batch']} | {c['threads']} | "
                                f"{c['stage1_ms_per_image']:.2f} | {c['ms_per_image']:.2f} | "
                                f"**{c['ratio_to_stage1']}** |")
    if cascades:
        out += ["", "Cascade cost: stage 1 alone and the whole cascade timed in alternation in one process (target "
                    "ratio ≤ 2).", "", *_header("checkpoint", "case", "batch", "threads", "stage 1 ms / image",
                                                "cascade ms / image", "ratio"), *cascades]
    return out + _provenance(rows)


def whole_image_section(rows: list[dict]) -> list[str]:
    """Pose on whole photos: the ways of finding the person compared, the no-person rates and the cost."""
    if not rows:
        return []
    out = ["## Pose on whole photos: finding the person, and saying when there is nobody", "",
           "Each way of choosing the person box, with the same pose model on the same images: no localization (the "
           "whole image is the box, LSP's convention), the pose model re-cropped on its own guesses from the whole "
           "image, the localizer's box, the localizer's box re-cropped until it converges (the default), and the "
           "annotated box (the ceiling: LSPET's labelled joints' box at 1.33, MPII's person box, LSP's whole image). "
           "\"person in box\": IoU >= 0.5 with the box the box rule draws around the annotated joints. LSPET val: "
           "the fixed split of 500 whole photos the localizer never trains on (whether the pose network did is "
           "said per result). MPII: the 5 scenes, MPII's joints mapped to LSP's 14.", ""]
    for r in rows:
        if r.get("pose_trained_on"):
            held_out = "held out" if r.get("lspet_val_held_out_from_pose") else "**not** held out (it saw these crops)"
            out += [f"`{r['benchmark']}` (`{r['checkpoint']}`): the pose network trained on "
                    f"{', '.join(r['pose_trained_on'])}; LSPET val {held_out}.", ""]
        else:
            out += [f"`{r['benchmark']}` (`{r['checkpoint']}`): the result does not record the pose network's "
                    "training sets (its model card does).", ""]
        for name, table in r["accuracy"].items():
            out += [f"`{r['benchmark']}`, {name} ({next(iter(table.values()))['n_images']} images):", "",
                    *_header("box", "PCK@0.2", "PCP", "person in box", "person found", "pose passes")]
            for approach, m in table.items():
                found = "–" if m["person_found"] is None else _f(m["person_found"])
                out.append(f"| {approach} | **{_f(m['pck@0.2'])}** | {_f(m['pcp'])} | {_f(m['person_in_box'])} | "
                           f"{found} | {m['mean_passes']:.2f} |")
            out.append("")
        t = r["targets"]
        lspet = r["accuracy"].get("lspet_val", {})
        if lspet:
            found = lspet["localizer box + re-crop (default)"]["pck@0.2"]
            ceiling = lspet["annotated box (ceiling)"]["pck@0.2"]
            out += [f"Targets on LSPET val: the default within {t['whole_image_pck_within_annotated']} of the "
                    f"annotated box ({found:.3f} against {ceiling:.3f}: {found - ceiling:+.3f}, "
                    f"{'met' if ceiling - found <= t['whole_image_pck_within_annotated'] else 'missed'}), and above "
                    f"{t['whole_image_pck_above']} ({'met' if found > t['whole_image_pck_above'] else 'missed'}).", ""]
        cal = r.get("calibration") or {}
        out += [f"No-person (`{r['benchmark']}`): person_score = sigmoid({cal.get('a', 1):.3f} · logit + "
                f"{cal.get('b', 0):.3f}), fitted on {cal.get('n_positive', '?')} validation photos with and "
                f"{cal.get('n_negative', '?')} views without a person; person_found = person_score ≥ 0.5.", "",
                *_header("set", "kind", "images", "error rate", "median person_score")]
        for kind, label in (("negatives", "false positives"), ("positives", "false negatives")):
            for name, m in r["no_person"][kind].items():
                out.append(f"| {name} | {label} | {m['n']} | **{_f(m['error_rate'])}** | "
                           f"{_f(m['median_person_score'])} |")
        out += ["", "Cost: `Predictor.predict` on decoded LSPET-val photos, batch 1, the two cases timed in "
                    "alternation in one process (median of 3 passes).", "",
                *_header("case", "threads", "ms / image")]
        out += [f"| {c['case']} | {c['threads']} | {c['ms_per_image']:.2f} |" for c in r["cost"]]
        out.append("")
    return out + _provenance(rows)


def _result_section(rows: list[dict], title: str, description: str, columns: tuple[str, ...],
                    lines: Callable[[dict], list[str]]) -> list[str]:
    """A section whose table gets `lines(result)` from each result file, then their provenance; none without."""
    if not rows:
        return []
    return _section(title, description, *columns) + [line for r in rows for line in lines(r)] + _provenance(rows)


def _peer_lines(r: dict) -> list[str]:
    out = [f"| `{r['benchmark']}` | {case} | {name} | {v['ms_per_image']:.2f} | {v['images_per_s']:.1f} | "
           f"**{v['ratio_to_movenet']:.2f}** |"
           for case, systems in r["results"].items() for name, v in systems.items()]
    if r.get("accuracy"):
        out += ["", f"`{r['benchmark']}` LSP test PCK@0.2 (whole photos, the person found): "
                    + ", ".join(f"{k} {v:.3f}" for k, v in r["accuracy"].items()), ""]
    return out


def _end_to_end_lines(r: dict) -> list[str]:
    return [f"| `{r['benchmark']}` | {name} | {r['threads']} | {v['photos_per_s']:.1f} | "
            f"{v['video_frames_per_s']:.1f} | {v['start_and_one_photo_s']:.2f} |" for name, v in r["results"].items()]


def _serve_lines(r: dict) -> list[str]:
    server, memory = r["server"], r["memory_mib"]
    setup = f"{server['workers']} worker(s) × {server['threads']} thread(s), queue {server['queue']}"
    dash = lambda v: "–" if v is None else f"{v:g}"  # noqa: E731
    return [f"| `{r['benchmark']}` | {setup} | {photos} | {row['concurrency']} | {row['requests']} | "
            f"{row['answered_right']} | {row['busy_503']} | {row['other_count']} | {dash(row['p50_ms'])} | "
            f"{dash(row['p95_ms'])} | {row['throughput_per_s']:.1f} | {memory['after_start']:.0f} / "
            f"{memory['peak']:.0f} |" for photos, rows in r["results"].items() for row in rows]


def _distributed_lines(r: dict) -> list[str]:
    out = [f"| `{r['benchmark']}` | {case} | {v['batch_per_process']} | {v['steps']} | {v['images_per_s']:.1f} | "
           f"**{v['ratio']:.2f}** |" for case, v in r["speed"].items()]
    if r.get("accuracy"):
        out += ["", f"`{r['benchmark']}`, the same schedule ({r['accuracy_epochs']:g} epoch(s), effective batch "
                    f"{r['effective_batch']}, {r['lr']}), validation PCK@0.2: "
                + "; ".join(f"{case} **{v['val_pck']:.3f}** ({v['train_minutes']:g} min)"
                            for case, v in r["accuracy"].items()), ""]
    return out


RECIPE_AUGMENT = {"rotation_deg": 30.0, "scale": [0.75, 1.25], "shift": 0.08, "flip_prob": 0.5, "brightness": 0.2,
                  "contrast": 0.2}


def _transfer_lines(r: dict) -> list[str]:
    out = []
    for label, row in r["runs"].items():
        t = row["training"]
        start = "init: " + Path(t["init"]).name if t["init"] else t["backbone_weights"] or "random"
        changed = ", ".join(f"{k} {v}" for k, v in t["augment"].items() if v != RECIPE_AUGMENT.get(k, 0.0)) or "–"
        lv, mu, lt, lf = row["lspet_val"], row["multi"], row["lsp_test"], row.get("lspet_val_found")
        bn = "frozen" if t["freeze_bn"] else "trained"
        out.append(f"| `{r['benchmark']}` | {label} | {start} | {t['padding']} | {bn} | {t['backbone_lr']:g} | "
                   f"{t.get('head', 'dsnt')} | {changed} | {t['input_size']} | {t['steps']} | "
                   f"**{_f(lv['pck@0.2'])}** ({_f(lv['pcp'])}) | {_f(lf and lf['pck@0.2'])} | "
                   f"**{_f(mu['pck@0.2'])}** | {_f(lt['pck@0.2'])} "
                   f"({_f(lt['pcp'])}) | {_f(t['train_minutes'], 1)} |")
    return out


def _movenet_crops_lines(r: dict) -> list[str]:
    keys = ("lspet_val", "multi", "lsp_test")
    return [f"| `{r['benchmark']}` | {label} | " + " | ".join(f"**{_f(row[k])}**" for k in keys) + " |"
            for label, row in r["systems"].items()]


def _multi_person_lines(r: dict) -> list[str]:
    out = [f"| `{r['benchmark']}` | {where} | {name} | **{v['ap']:.3f}** | {v['ap50']:.3f} | {v['ar']:.3f} | "
           f"{v['people_per_photo']} |"
           for where, key in (("data/multi", "ap_multi"), ("LSPET val 2×2 mosaics", "ap_lspet_val_mosaics"))
           for name, v in r[key].items()]
    if r.get("note"):
        out += ["", f"`{r['benchmark']}`: {r['note']}."]
    out += ["", f"`{r['benchmark']}`, one person per photo (PCK@0.2 / PCP of the person found that the annotated "
                "person is; the best person's PCK@0.2 in brackets; photos where nobody was found):", "",
            "| system | set | PCK@0.2 | PCP | best person | nobody found |", "| --- | --- | --- | --- | --- | --- |"]
    out += [f"| {name} | {key} | **{v['pck@0.2']:.3f}** | {v['pcp']:.3f} | ({v['best_person_pck@0.2']:.3f}) | "
            f"{v['false_negative_rate']:.3f} |" for name, sets in r["one_person"].items() for key, v in sets.items()]
    out += ["", f"`{r['benchmark']}`, data/negatives/test (250 photos with nobody): someone found in "
            + "; ".join(f"{name} **{v['false_positive_rate']:.3f}**" for name, v in r["nobody"].items()) + ".", ""]
    if r.get("speed"):
        out += ["| people in the photo | threads | ours ms | previous default ms | ours / previous | MoveNet ms | "
                "ours / MoveNet | ours: people found |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        out += [f"| {v['people']} | {v['threads']} | {v['ours_ms']:.1f} | {_f(v.get('previous_default_ms'), 1)} | "
                f"**{_f(v.get('ratio_ours_to_previous_default'), 2)}** | {v['movenet_ms']:.1f} | "
                f"**{v['ratio_ours_to_movenet']:.2f}** | {v['ours_people_found']} |" for v in r["speed"]]
        out.append("")
    return out


# sections made by `_result_section`: result-file prefix -> (title, description, columns, a result's table lines)
RESULT_SECTIONS: dict[str, tuple[str, str, tuple[str, ...], Callable[[dict], list[str]]]] = {
    "transfer": (
        "Everyday photos: where the pose network starts, and how it is fine-tuned (same budget)",
        "Stage-1 MobileNetV2 + DSNT runs of `configs/movenet_dsnt_cpu.yaml` with one change each, the same number of "
        "steps, selected on LSPET val, then scored given the annotated person box: LSPET val (500 held-out whole "
        "photos, no network trained on them; 14 joints), data/multi (54 people in 19 everyday photos, 12 limb "
        "joints) and LSP test (reported only). LSPET's and multi's box: the square of 1.33 × the labelled joints' "
        "extent; LSP's: the whole image. \"Found box\": the shipped person finder and its re-crops in front of the "
        "run's network on LSPET val's whole photos. PCK@0.2 of the torso diameter (PCP strict in brackets). Start: "
        "`movenet_backbone.pth` is MoveNet Lightning's backbone imported by `deeppose import-tflite`; "
        "`mobilenet_v2_from_tflite_quant_dequantized.pth` the ImageNet one; `init: movenet_pose160.pt` MoveNet's "
        "backbone, pyramid and keypoint branch (`--pose-model 160`). One run each (no seed repeats): differences of a "
        "hundredth or two are within what a seed moves; train minutes are wall time beside other work.",
        ("run", "label", "start", "padding", "backbone BN", "backbone lr ×", "head", "augmentation added",
         "input", "steps", "LSPET val", "LSPET val, found box", "multi", "LSP test", "train min"), _transfer_lines),
    "multi_person": (
        "Everyone in the photo: the person detector beside the one-person localizer and MoveNet",
        "`benchmarks/multi_person.py`. COCO keypoint AP/AR (pycocotools, OKS with COCO's sigmas of the 12 limb joints "
        "LSP and COCO share) on data/multi (19 everyday photos, 54 people, every person annotated) and on 2×2 mosaics "
        "of the 500 held-out LSPET val photos (each tile's annotated person the ground truth; people nobody annotated "
        "count against every system alike). Ours at the shipped threshold (the people a user gets) and with every "
        "candidate above the detector's floor (as COCO evaluations rank detections); MoveNet Lightning int8 "
        "(single pose, on the squared photo) returns one person per photo. Then one-person photos, photos with "
        "nobody, and ms per photo with 1, 2 and 4 people (LSP test people on a 2×2 canvas): ours and the previous "
        "default (its ONNX export, alternating) on ONNX Runtime "
        "and MoveNet on LiteRT in one run.",
        ("run", "photos", "system", "AP", "AP50", "AR", "people per photo"), _multi_person_lines),
    "movenet_crops": (
        "Beside MoveNet on the same person crops",
        "Each person's square crop (as above: LSPET val and data/multi 1.33 × the joints' extent, LSP test the whole "
        "image), cut once and resized to each network's input (MoveNet Lightning int8 at 192 px through LiteRT; ours "
        "at its size). PCK@0.2 on the 12 limb joints LSP and COCO share (COCO has no neck or head top). The shipped "
        "default's pose network trained on all of LSPET, these 500 photos included, so its LSPET val figure is not "
        "held out; the other networks never saw them.",
        ("run", "system", "LSPET val", "multi", "LSP test"), _movenet_crops_lines),
    "peers_speed": (
        "Speed beside MoveNet Lightning (one run, alternating)",
        "End to end from a decoded RGB photo (LSP test) to joints in pixels. Ours: `Predictor.predict` (the person "
        "found, re-cropped; PyTorch or ONNX Runtime); MoveNet: letterbox to 192 px and the int8 TFLite graph. Each "
        "system in its own process, asked for rounds in turn. The ratio to MoveNet is the figure to read.",
        ("run", "case", "system", "ms / image", "images / s", "× MoveNet"), _peer_lines),
    "end_to_end": (
        "End to end: `deeppose predict` on photos and on a video",
        "Wall time of the command, its start-up (loading, one photo) set apart: 100 LSP test JPEGs (decoding, the "
        "person found, a JSON and a PNG written per photo) and a 100-frame 640 × 480 video (the person tracked, an "
        "annotated MP4 and a JSON line per frame).",
        ("run", "system", "threads", "photos / s", "video frames / s", "start-up + 1 photo s"), _end_to_end_lines),
    "distributed": (
        "Training on one and on two processes",
        "`deeppose train` of the shipped model's recipe (MobileNetV2 + DSNT, 160 px, LSP + LSPET) for a fixed number "
        "of steps at the same effective batch: one process, or two under torchrun (DistributedDataParallel over "
        "gloo) each with half the batch and one thread. Images/s of the training loop as the run reports it; the "
        "ratio to one process with both cores' threads is the figure to read.",
        ("run", "processes x threads", "batch per process", "steps", "images / s", "× 1 process, 2 threads"),
        _distributed_lines),
    "serve_load": (
        "`deeppose serve` under load on loopback",
        "The real server with the shipped ONNX model; client threads on the same 2 cores POST photos to /v1/pose, a "
        "bounded number of requests per level. Every answer is checked against the idle server's answer for the "
        "same photo (right), a refusal must be 503 with Retry-After (busy); \"other\" counts lost or wrong "
        "answers and other statuses. The last level of each set sends three times what the queue holds at once. "
        "Latency percentiles over the answered requests; memory: the server's resident MiB after start-up / at its "
        "peak (VmHWM).",
        ("run", "server", "photos", "clients", "requests", "right", "busy 503", "other", "p50 ms", "p95 ms",
         "answers / s", "memory MiB"), _serve_lines),
}


def comparison_section(results: list[dict]) -> list[str]:
    """The head comparison: one table per spec, its plot, and the entries still to run."""
    from deeppose.eval.comparison import format_rows

    if not results:
        return []
    lines = ["## Heads compared on LSP test (same backbone, data and budget)", ""]
    for r in results:
        table = format_rows(r["rows"], r.get("references", []))
        timed = [m for row in r["rows"] for m in (row.get("stage1"), row.get("cascade")) if m]
        how = (" (re-timed from the untrained architectures on an idle machine)"
               if timed and all("timed" in m for m in timed) else " (timed right after training)")
        budget = (f"{r['epochs']:g} training epochs per model" if r.get("epochs") is not None
                  else f"{r['budget_minutes']:g} training minutes per model")
        lines += [f"`{r['benchmark']}`: `{r['spec']}`, {budget}, the "
                  f"refinement stage {r['cascade_minutes']:g} more; ms/image at batch 1 on {r['threads']} threads"
                  f"{how}; "
                  "all 14 joints scored. References: the figures measured for the issue on this machine.", "",
                  table, "", f"![accuracy against speed](benchmarks/results/{r['plot']})", ""]
        if r["pending"]:
            lines += [f"Not run yet: {', '.join(r['pending'])}.", ""]
    return lines + _provenance(results)


def render() -> str:
    lines = ["# Benchmarks", "",
             "Generated by `python benchmarks/report.py` from the JSON files in `benchmarks/results/`; each file "
             "records the date, commit, machine and command that produced it. Nothing here is typed by hand.", ""]
    speed = [_result_section(_load(prefix), *spec) for prefix, spec in RESULT_SECTIONS.items()]
    for section in (whole_image_section(_load("whole_image")), *speed,
                    accuracy_section(_load("stage1_")), cascade_section(_load("cascade_")),
                    throughput_section(_load("train_throughput")),
                    inference_section(_load("inference_")), comparison_section(_load("compare_"))):
        lines += section + [""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    text = render()
    atomic_write(args.out, lambda tmp: tmp.write_text(text))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
