"""Everyone in the photo (issue "Everyone in the photo"): the person detector + top-down pose against the one-person
localizer it replaced and MoveNet Lightning, on the same photos, in one run.

1. COCO keypoint AP/AR (pycocotools, the 12 limb joints LSP-14 and COCO-17 share, COCO's sigmas) on data/multi (19
   photos, 54 people, every person annotated), and on 2 x 2 mosaics of the held-out LSPET val photos (each tile a
   whole photo, its annotated person the ground truth: people nobody annotated count against every system alike).
   Ours at the shipped threshold (the people a user gets) and with every candidate the detector scores above its
   floor (as COCO evaluations rank detections). MoveNet (single pose) returns one person per photo, scored by its
   mean keypoint score.
2. One-person photos: PCK@0.2 and PCP on LSP test and on the held-out LSPET val whole photos, the person scored
   being the one found that the annotated person is (`eval.boxes.matched_person`); also the best person's.
3. Nobody here: false positives on data/negatives/test (250 real photos: animals, food, objects, places), false
   negatives on LSP test and LSPET val.
4. Speed: ms per photo with 1, 2 and 4 people (LSP test people on a 2 x 2 canvas, the other tiles black), 1 and 2
   threads, ours and the previous default (ONNX Runtime, the default's format, alternating) and MoveNet (LiteRT, in
   the peers' interpreter) in one run.

    python benchmarks/multi_person.py --peer-python runs/peers/bin/python
Writes benchmarks/results/<name>.json and prints what it measures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import write_result

from deeppose.data.io import load_json, read_image
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.eval.boxes import predict_boxes
from deeppose.eval.multi_person import MULTI_SIGMAS, coco_results, keypoint_ap
from deeppose.eval.report import score
from deeppose.geometry import (
    augmentation_matrix,
    invert_affine,
    square_box,
    transform_points,
    warp_image,
    whole_image_box,
)
from deeppose.paths import data_root, default_model
from deeppose.serve.detect import SCORE_FLOOR
from deeppose.serve.predictor import Predictor
from deeppose.skeleton import COCO17, LSP14
from deeppose.train.localizer import whole_image_splits

LIMBS12 = [LSP14.index(j) for j in LSP14.joints if j not in ("neck", "head_top")]
MOVENET_SIZE = 192
MOSAIC_SIDE = 384
WORKER = r'''
import sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=int(sys.argv[4]))
it.allocate_tensors()
inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
crops = np.load(sys.argv[2])
result, times = [], []
for crop in crops:
    t0 = time.perf_counter()
    it.set_tensor(inp, crop[None])
    it.invoke()
    result.append(it.get_tensor(out)[0, 0])
    times.append(time.perf_counter() - t0)
np.save(sys.argv[3], np.stack(result))
np.save(sys.argv[3] + ".times.npy", np.array(times))
'''


def movenet_people(peer: str, model: Path, images: list[np.ndarray], threads: int = 2
                   ) -> tuple[list[np.ndarray], list[float], np.ndarray]:
    """MoveNet single-pose on each squared photo: ((K=17, 2) pixel keypoints, its mean keypoint score) per photo,
    and the interpreter's seconds per photo (the photo's resize excluded)."""
    affines = [augmentation_matrix(square_box(whole_image_box(im.shape[1], im.shape[0])), (MOVENET_SIZE,) * 2)
               for im in images]
    crops = np.stack([warp_image(im, a, (MOVENET_SIZE,) * 2) for im, a in zip(images, affines)])
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/crops.npy", crops)
        subprocess.run([peer, "-c", WORKER, str(model), f"{tmp}/crops.npy", f"{tmp}/out.npy", str(threads)],
                       check=True)
        out, times = np.load(f"{tmp}/out.npy"), np.load(f"{tmp}/out.npy.times.npy")
    joints = [transform_points(invert_affine(a), o[:, [1, 0]] * MOVENET_SIZE - 0.5) for a, o in zip(affines, out)]
    return joints, [float(o[:, 2].mean()) for o in out], times


def movenet_results(joints: list[np.ndarray], scores: list[float], image_ids: list[int]) -> list[dict]:
    """MoveNet's one person per photo as COCO results on the 12 limb joints (LSP order)."""
    order = [COCO17.index(LSP14.joints[k]) for k in LIMBS12]
    return [{"image_id": i, "category_id": 1, "score": s,
             "keypoints": np.concatenate([j[order] + 0.5, np.ones((12, 1))], axis=1).ravel().tolist()}
            for j, s, i in zip(joints, scores, image_ids)]


def lspet_mosaics(val: PoseDataset, side: int = MOSAIC_SIDE) -> tuple[list[np.ndarray], dict]:
    """2 x 2 mosaics of the held-out LSPET photos (each whole photo squared into a tile, in order) and their COCO
    ground truth: each tile's annotated person on the 12 limb joints, bbox their extent padded by 10 %, area 0.53 x
    the bbox's (COCO's usual segment-to-box ratio)."""
    tile = side // 2
    images, gt_images, annotations = [], [], []
    for m in range(len(val) // 4):
        canvas = np.zeros((side, side, 3), np.uint8)
        for t in range(4):
            s = val.samples[4 * m + t]
            image = read_image(s.image_path)
            a = augmentation_matrix(square_box(whole_image_box(image.shape[1], image.shape[0])), (tile, tile))
            ox, oy = (t % 2) * tile, (t // 2) * tile
            canvas[oy:oy + tile, ox:ox + tile] = warp_image(image, a, (tile, tile))
            joints = transform_points(a, s.joints.astype(np.float64)) + [ox, oy]
            lab = s.labelled[LIMBS12]
            if not lab.any():
                continue
            pts = joints[LIMBS12][lab]
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            pad = 0.1 * (hi - lo)
            box = [*(lo - pad + 0.5), *(hi - lo + 2 * pad)]
            kp = np.concatenate([joints[LIMBS12] + 0.5, 2.0 * lab[:, None]], axis=1)
            kp[~lab] = 0
            annotations.append({"id": len(annotations) + 1, "image_id": m + 1, "category_id": 1, "iscrowd": 0,
                                "bbox": [float(v) for v in box], "area": float(0.53 * box[2] * box[3]),
                                "num_keypoints": int(lab.sum()), "keypoints": kp.ravel().tolist()})
        images.append(canvas)
        gt_images.append({"id": m + 1, "width": side, "height": side, "file_name": f"mosaic_{m}"})
    gt = {"images": gt_images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person", "keypoints": [LSP14.joints[k] for k in LIMBS12]}]}
    return images, gt


def multi_person_ap(systems: dict[str, Predictor], peer: str, movenet: Path, photos: list[np.ndarray], gt: dict,
                    label: str) -> dict:
    """COCO keypoint AP/AR of each system on `photos` against `gt` (image ids 1..n in order)."""
    ids = [im["id"] for im in gt["images"]]
    rows = {}
    for name, predictor in systems.items():
        threshold = predictor.threshold
        variants = {name: threshold}
        if predictor.finds_everyone:
            variants[f"{name}, every candidate (score >= {SCORE_FLOOR})"] = SCORE_FLOOR
        for variant, t in variants.items():
            predictor.threshold = t
            results = predictor.predict_images(photos)
            predictor.threshold = threshold
            ap = keypoint_ap(gt, coco_results(results, ids, LIMBS12), MULTI_SIGMAS)
            rows[variant] = {**{k: round(v, 4) for k, v in ap.items()},
                             "people_per_photo": round(float(np.mean([len(r.people) for r in results])), 3)}
    joints, scores, _ = movenet_people(peer, movenet, photos)
    ap = keypoint_ap(gt, movenet_results(joints, scores, ids), MULTI_SIGMAS)
    rows["MoveNet Lightning int8 (single pose)"] = {**{k: round(v, 4) for k, v in ap.items()}, "people_per_photo": 1}
    for name, row in rows.items():
        print(f"{label}: {name:<58} AP {row['ap']:.3f}  AP50 {row['ap50']:.3f}  AR {row['ar']:.3f}  people/photo "
              f"{row['people_per_photo']}", flush=True)
    return rows


def one_person(systems: dict[str, Predictor], sets: dict[str, PoseDataset]) -> dict:
    """PCK@0.2 and PCP of the matched person (and the best person) found in each photo, and how often someone was
    found."""
    rows: dict[str, dict] = {}
    for name, predictor in systems.items():
        rows[name] = {}
        for key, ds in sets.items():
            found = predict_boxes(predictor, ds, "found")
            matched = score(np.stack([p.joints for p, _ in found]), ds)
            images = [read_image(s.image_path) for s in ds.samples]
            best = score(np.stack([r.joints for r in predictor.predict_images(images)]), ds)
            rows[name][key] = {"pck@0.2": round(matched["pck"]["0.2"], 4), "pcp": round(matched["pcp"]["mean"], 4),
                               "best_person_pck@0.2": round(best["pck"]["0.2"], 4),
                               "false_negative_rate": round(1 - float(np.mean([f for _, f in found])), 4),
                               "n_images": len(ds)}
            r = rows[name][key]
            print(f"{key}: {name:<40} PCK@0.2 {r['pck@0.2']:.3f} (best person {r['best_person_pck@0.2']:.3f})  PCP "
                  f"{r['pcp']:.3f}  missed {r['false_negative_rate']:.3f}", flush=True)
    return rows


def nobody(systems: dict[str, Predictor], folder: Path) -> dict:
    """False positives on the real photos with nobody in them."""
    photos = [read_image(p) for p in sorted(folder.glob("*.jpg"))]
    rows = {}
    for name, predictor in systems.items():
        results = predictor.predict_images(photos)
        rate = float(np.mean([bool(r.people) for r in results]))
        rows[name] = {"n": len(photos), "false_positive_rate": round(rate, 4),
                      "median_best_score": round(float(np.median([r.person_score for r in results])), 4)}
        print(f"data/negatives/test: {name:<40} false positives {rate:.3f} of {len(photos)}", flush=True)
    return rows


def crowd_canvases(lsp: PoseDataset, people: int, n: int, side: int = 480) -> list[np.ndarray]:
    """`n` canvases of `people` LSP test photos (1: the photo itself, squared; 2 and 4: tiles of a 2 x 2 canvas,
    the other tiles black)."""
    out = []
    for c in range(n):
        picks = [lsp.samples[(c * 4 + k) % len(lsp)] for k in range(people)]
        if people == 1:
            out.append(read_image(picks[0].image_path))
            continue
        canvas = np.zeros((side, side, 3), np.uint8)
        tile = side // 2
        for k, s in enumerate(picks):
            image = read_image(s.image_path)
            a = augmentation_matrix(square_box(whole_image_box(image.shape[1], image.shape[0])), (tile, tile))
            canvas[(k // 2) * tile:(k // 2 + 1) * tile, (k % 2) * tile:(k % 2 + 1) * tile] = warp_image(image, a,
                                                                                                       (tile, tile))
        out.append(canvas)
    return out


def time_photos(predictor: Predictor, photos: list[np.ndarray], rounds: int = 3) -> tuple[float, float]:
    """(median ms per photo over `rounds` passes, mean people found) of a predictor on decoded photos."""
    predictor.predict(photos[0])  # warm-up
    times, found = [], []
    for _ in range(rounds):
        for photo in photos:
            t0 = time.perf_counter()
            result = predictor.predict(photo)
            times.append(time.perf_counter() - t0)
            found.append(len(result.people))
    return 1000 * float(np.median(times)), float(np.mean(found))


def speed(ours: Path, baseline: Path | None, peer: str, movenet: Path, lsp: PoseDataset, n: int = 20
          ) -> list[dict]:
    """ms per photo (median) with 1, 2 and 4 people, 1 and 2 threads: ours and the previous default (its ONNX
    export) on ONNX Runtime, alternating, and MoveNet."""
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        predictor = Predictor.from_checkpoint(ours, threads=threads)
        before = Predictor.from_checkpoint(baseline, threads=threads) if baseline else None
        for people in (1, 2, 4):
            canvases = crowd_canvases(lsp, people, n)
            ours_ms, found = time_photos(predictor, canvases)
            row = {"people": people, "threads": threads, "ours_ms": round(ours_ms, 2),
                   "ours_people_found": round(found, 2)}
            if before is not None:
                row["previous_default_ms"] = round(time_photos(before, canvases)[0], 2)
                row["ratio_ours_to_previous_default"] = round(row["ours_ms"] / row["previous_default_ms"], 2)
            _, _, mn = movenet_people(peer, movenet, canvases, threads)
            row["movenet_ms"] = round(1000 * float(np.median(mn[1:])), 2)
            row["ratio_ours_to_movenet"] = round(row["ours_ms"] / row["movenet_ms"], 2)
            rows.append(row)
            print(f"speed: {people} people, {threads} threads: {row}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=default_model(), help="ours (default: the shipped model)")
    parser.add_argument("--baseline", type=Path, default=Path("models/deeppose_movenet_person.pt"),
                        help="the one-person localizer pipeline it replaced")
    parser.add_argument("--baseline-export", type=Path, default=Path("runs/old_export/deeppose_movenet_person.onnx"),
                        help="the previous default's ONNX export, timed beside ours (skipped where absent)")
    parser.add_argument("--peer-python", default=sys.executable, help="python of a venv with ai-edge-litert")
    parser.add_argument("--movenet", type=Path, default=data_root().parent / "peers" /
                        "movenet_single_pose_lightning_ptq.tflite")
    parser.add_argument("--name", default="multi_person")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    root = data_root()
    systems = {"ours: detector + top-down pose": Predictor.from_checkpoint(args.checkpoint),
               "one-person localizer (previous default)": Predictor.from_checkpoint(args.baseline)}
    gt = load_json(root / "multi" / "annotations.json")
    multi = [read_image(root / "multi" / "images" / im["file_name"]) for im in gt["images"]]
    val = whole_image_splits(root)["lspet_val"]
    mosaics, mosaic_gt = lspet_mosaics(val)
    lsp = load_dataset("lsp", root / "lsp", "test")
    out = {
        "ap_multi": multi_person_ap(systems, args.peer_python, args.movenet, multi, gt, "data/multi"),
        "ap_lspet_val_mosaics": multi_person_ap(systems, args.peer_python, args.movenet, mosaics, mosaic_gt,
                                                "LSPET val 2x2 mosaics"),
        "one_person": one_person(systems, {"lsp_test": lsp, "lspet_val": val}),
        "nobody": nobody(systems, root / "negatives" / "test"),
    }
    if not args.skip_speed:
        baseline = args.baseline_export if args.baseline_export.is_file() else None
        out["speed"] = speed(args.checkpoint, baseline, args.peer_python, args.movenet, lsp)
    path = write_result(args.name, {
        "what": "everyone in the photo: COCO keypoint AP/AR on the 12 limb joints (data/multi; 2x2 mosaics of the "
                f"held-out LSPET val photos, {len(mosaics)} of them), one-person PCK@0.2/PCP of the matched person, "
                "false positives on data/negatives/test, ms per photo with 1/2/4 people",
        "checkpoint": args.checkpoint.name, "baseline": str(args.baseline), **out},
        " ".join(["python", "benchmarks/multi_person.py", *sys.argv[1:]]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
