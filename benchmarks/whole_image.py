"""Pose on whole photos: each way of finding the person compared on the same images, the no-person rates, and the
cost of localization.

    python benchmarks/whole_image.py --checkpoint models/deeppose_movenet_person.pt --name whole_image_movenet_person

Sets: the fixed whole-photo validation split of LSPET (excluded from the localizer's training; whether the pose
network's was is recorded from its checkpoint's provenance), LSP test (images 1001-2000) and the 5 MPII scenes
(MPII's 16 joints mapped to LSP's 14). Approaches: no localization (the whole image is the box), the pose model
re-cropped on its own guesses from the whole image (3 times), the localizer's box, the localizer's box re-cropped
until it converges (the default), and the annotated box (the ceiling). "person in box": the share of images whose
box has IoU >= 0.5 with the box the box rule draws around the annotated joints.

No-person: false positives on pictures with nobody in them (synthetic backgrounds, regions of LSPET-val and
LSP-test photos clear of the annotated person, scikit-image's sample photos of animals and objects, install
`pip install -e ".[bench]"`, and the 250 real photos of ../shared/data/negatives/test) and false negatives on
photos of people (LSPET val, LSP test, MPII, scikit-image's two portraits). Cost: ms per image at batch 1 on 1 and
2 threads, `Predictor.predict` on decoded LSPET-val photos, with and without localization, timed in alternation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import write_result

from deeppose.data.io import read_image
from deeppose.data.registry import load_dataset
from deeppose.data.sample import PoseDataset
from deeppose.data.whole_image import clear_region, synthetic_background
from deeppose.eval.report import score
from deeppose.geometry import centre_box, corner_box, joints_box
from deeppose.paths import data_root
from deeppose.serve.localize import annotated_box, person_in_box, recrop_until_converged
from deeppose.serve.predictor import Person, Prediction, Predictor
from deeppose.skeleton import get_skeleton
from deeppose.train.localizer import localizer_config, whole_image_splits

MPII_TO_LSP = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9]
NOBODY_PHOTOS = ("chelsea", "coffee", "rocket", "horse", "coins", "brick", "grass", "gravel", "moon", "colorwheel",
                 "hubble_deep_field", "clock", "page", "text", "logo", "retina", "microaneurysms",
                 "immunohistochemistry", "cell")
PEOPLE_PHOTOS = ("astronaut", "camera")


def mpii_as_lsp(root: Path) -> PoseDataset:
    """The MPII scenes with their joints in LSP's order (pelvis and thorax dropped), their boxes kept."""
    from dataclasses import replace

    mpii = load_dataset("mpii", root / "mpii", "all")
    samples = [replace(s, joints=s.joints[MPII_TO_LSP], labelled=s.labelled[MPII_TO_LSP],
                       visible=s.visible[MPII_TO_LSP]) for s in mpii.samples]
    return PoseDataset("mpii", mpii.root, "all", get_skeleton("lsp14"), samples)


def truth_boxes(dataset: PoseDataset, images: list[np.ndarray]) -> np.ndarray:
    """The annotated box of every sample (the ceiling), given its decoded image."""
    return np.stack([annotated_box(s.box, s.joints, s.labelled, dataset.name, im.shape[1], im.shape[0])
                     for s, im in zip(dataset.samples, images)])


def summarize(results: list[Prediction], dataset: PoseDataset) -> dict:
    pred = np.stack([r.joints for r in results])
    m = score(pred, dataset)
    boxes = np.stack([centre_box(*r.box) for r in results])
    found = [r.person_found for r in results]
    return {"pck@0.2": round(m["pck"]["0.2"], 4), "pcp": round(m["pcp"]["mean"], 4),
            "person_in_box": round(float(person_in_box(boxes, dataset.joints(), dataset.labelled()).mean()), 4),
            "person_found": None if found[0] is None else round(float(np.mean(found)), 4),
            "mean_passes": round(float(np.mean([r.passes for r in results])), 3), "n_images": len(dataset)}


def self_recrop(pose: Predictor, images: list[np.ndarray], recrops: int = 3) -> list[Prediction]:
    """The pose model alone, starting from the whole image and re-cropped on its own guesses."""
    first = np.stack([centre_box(*p.box) for p in pose.predict_images(images)])
    r = recrop_until_converged(lambda idx, b: pose.pose([images[i] for i in idx], b), first, recrops)
    people = [Person(r.joints[i, -1], r.joints[i], r.confidence[i], np.array(corner_box(r.boxes[i])), "found", None,
                     int(r.iterations[i])) for i in range(len(images))]
    return [Prediction([p], p, None) for p in people]


def accuracy(pipeline: Predictor, pose: Predictor, sets: dict[str, PoseDataset]) -> dict:
    out = {}
    for name, ds in sets.items():
        print(f"{name}: {len(ds)} images", file=sys.stderr)
        images = [read_image(s.image_path) for s in ds.samples]
        truth = truth_boxes(ds, images)
        no_recrop = Predictor(pose.model, pose.meta, localizer=pipeline.localizer,
                              localizer_meta=pipeline.localizer_meta, recrops=0)
        rows = {
            "none (whole image)": pose.predict_images(images),
            "pose model re-cropped on itself (3x)": self_recrop(pose, images),
            "localizer box": no_recrop.predict_images(images),
            "localizer box + re-crop (default)": pipeline.predict_images(images),
            "annotated box (ceiling)": pipeline.predict_images(images, [corner_box(b) for b in truth]),
        }
        out[name] = {k: summarize(v, ds) for k, v in rows.items()}
        for k, v in out[name].items():
            print(f"  {k:<40} {v}", file=sys.stderr)
    return out


def skimage_photos(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """scikit-image's sample photos by name, as RGB uint8 (grey ones repeated), {} without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        return {}
    out = {}
    for name in names:
        im = np.asarray(getattr(data, name)())
        im = np.repeat(im[..., None], 3, axis=-1) if im.ndim == 2 else im[..., :3]
        out[name] = (im * 255).astype(np.uint8) if im.dtype != np.uint8 else im
    return out


def clear_regions(ds: PoseDataset, seed: int, size: int = 160) -> list[np.ndarray]:
    """One region per photo clear of its annotated person (1.3 boxes away), where the photo has one."""
    from deeppose.data.whole_image import ZoomOut

    out, zoom = [], ZoomOut()
    for i, s in enumerate(ds.samples):
        image = read_image(s.image_path)
        rng = np.random.default_rng([seed, i])
        box = clear_region(rng, image.shape[1], image.shape[0], joints_box(s.joints, s.labelled, 1.33), zoom)
        if box is not None:
            r = box.astype(int)
            x0, y0 = max(r[0] - r[2] // 2, 0), max(r[1] - r[3] // 2, 0)
            out.append(np.ascontiguousarray(image[y0:y0 + r[3], x0:x0 + r[2]]))
    return [im for im in out if min(im.shape[:2]) >= 16]


def negative_photos(folder: Path) -> list[np.ndarray]:
    """The real photos with nobody in them (../shared/data/negatives/test; none if the folder is absent)."""
    return [read_image(p) for p in sorted(folder.glob("*.jpg"))] if folder.is_dir() else []


def pose_training_sets(pipeline: Predictor) -> list[str] | None:
    """The datasets the pipeline's pose network (its stage 1, and its refiners) trained on, as its checkpoint's
    provenance records them (None where it does not)."""
    meta = pipeline.meta
    stage1 = meta.stage1 if meta.kind == "cascade" else meta
    config = (stage1.provenance or {}).get("config") or {}
    return (config.get("data") or {}).get("train")


def no_person(pipeline: Predictor, sets: dict[str, PoseDataset]) -> dict:
    rng = np.random.default_rng(7)
    negatives = {
        "synthetic backgrounds (noise, blur, flat, gradients, shapes)": [synthetic_background(rng, int(rng.integers(
            96, 400))) for _ in range(500)],
        "LSPET-val regions clear of the person": clear_regions(sets["lspet_val"], 2000),
        "LSP-test regions clear of the person": clear_regions(sets["lsp_test"], 3000),
        "scikit-image photos without people": list(skimage_photos(NOBODY_PHOTOS).values()),
        "data/negatives test (animals, food, objects, places)": negative_photos(data_root() / "negatives" / "test"),
    }
    positives = {
        "LSPET val whole photos": [read_image(s.image_path) for s in sets["lspet_val"].samples],
        "LSP test": [read_image(s.image_path) for s in sets["lsp_test"].samples],
        "MPII scenes": [read_image(s.image_path) for s in sets["mpii"].samples],
        "scikit-image portraits": list(skimage_photos(PEOPLE_PHOTOS).values()),
    }
    out = {"negatives": {}, "positives": {}}
    for kind, groups, wrong in (("negatives", negatives, True), ("positives", positives, False)):
        for name, images in groups.items():
            if not images:
                continue
            scores = np.array([r.person_score for r in pipeline.predict_images(images)])
            found = scores >= 0.5
            rate = float(found.mean() if wrong else (~found).mean())
            out[kind][name] = {"n": len(images), "error_rate": round(rate, 4),
                               "median_person_score": round(float(np.median(scores)), 4)}
            label = "false-positive" if wrong else "false-negative"
            print(f"  {name:<60} n={len(images):<5} {label} rate {rate:.3f}", file=sys.stderr)
    return out


def cost(pipeline: Predictor, pose: Predictor, images: list[np.ndarray], repeats: int = 3) -> list[dict]:
    cases = {"whole image, no localization": pose, "localizer + re-crop (default)": pipeline}
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for p in cases.values():  # warm-up
            p.predict(images[0])
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(repeats):
            for name, p in cases.items():
                t0 = time.perf_counter()
                for im in images:
                    p.predict(im)
                times[name].append((time.perf_counter() - t0) / len(images) * 1000)
        for name, t in times.items():
            rows.append({"case": name, "threads": threads, "batch": 1, "ms_per_image": round(float(np.median(t)), 2)})
            print(f"  {name:<40} {threads} threads: {np.median(t):.2f} ms/image", file=sys.stderr)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="models/deeppose_movenet_person.pt")
    parser.add_argument("--name", default="whole_image_movenet_person")
    parser.add_argument("--timing-images", type=int, default=50)
    args = parser.parse_args()
    pipeline = Predictor.from_checkpoint(args.checkpoint)
    pose = Predictor.from_checkpoint(args.checkpoint, localize=False)
    cfg = localizer_config(pipeline.localizer_meta.provenance["config"])
    root = data_root()
    splits = whole_image_splits(root, cfg.seed, cfg.lsp_val_size, cfg.lspet_val_size)
    sets = {"lspet_val": splits["lspet_val"], "lsp_test": load_dataset("lsp", root / "lsp", "test"),
            "mpii": mpii_as_lsp(root)}
    torch.set_num_threads(2)
    acc = accuracy(pipeline, pose, sets)
    nobody = no_person(pipeline, sets)
    images = [read_image(s.image_path) for s in splits["lspet_val"].samples[:args.timing_images]]
    timing = cost(pipeline, pose, images)
    command = f"benchmarks/whole_image.py --checkpoint {args.checkpoint} --name {args.name}"
    calibration = pipeline.localizer_meta.provenance.get("calibration")
    trained_on = pose_training_sets(pipeline)
    path = write_result(args.name, {"checkpoint": args.checkpoint, "calibration": calibration, "accuracy": acc,
                                    "no_person": nobody, "cost": timing, "pose_trained_on": trained_on,
                                    "lspet_val_held_out_from_pose": None if trained_on is None else all(
                                        d in ("lsp:train", "lsp:val", "lspet:train") for d in trained_on),
        "targets": {"whole_image_pck_within_annotated": 0.03, "whole_image_pck_above": 0.70}}, command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
