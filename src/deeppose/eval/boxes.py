"""`deeppose eval`: score a model on a dataset with the person boxes of one or more sources, a report folder each.

Box sources (`BOX_SOURCES`): "found" (the system finds the people; never read from the annotations), "annotated"
(the dataset's box; the labelled joints' box for whole photos such as LSPET; else the whole image) and "image" (the
whole image).

With found boxes, the person scored is the one the system found that the annotated person is (`matched_person`:
the found box overlapping the annotated person's most, as multi-person evaluation matches people): the photos of
single-person datasets often show other people, whom nobody annotated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deeppose.data.io import read_image
from deeppose.data.sample import PoseDataset, Sample
from deeppose.errors import DeepPoseError
from deeppose.eval.metrics import confidence_report
from deeppose.eval.report import format_pcp_table, write_report, write_stage_report
from deeppose.files import write_json
from deeppose.geometry import centre_box, corner_box, joints_box, square_box, whole_image_box
from deeppose.serve.localize import BOX_SCALE, annotated_box, iou, person_in_box
from deeppose.serve.predictor import Person, Prediction, Predictor

BOX_SOURCES = ("found", "annotated", "image")


def boxes_for(samples: list[Sample], images: list[np.ndarray], dataset: str, mode: str) -> list[list[float] | None]:
    """The box [x, y, w, h] of each sample (its decoded image beside it) for an evaluation mode: "annotated"
    (`serve.localize.annotated_box`), "image" (the whole image) or "found" (None: the system finds the people)."""
    if mode not in BOX_SOURCES:
        raise ValueError(f"box mode must be one of {', '.join(BOX_SOURCES)}, got {mode!r}")
    if mode == "found":
        return [None] * len(samples)
    return [corner_box(square_box(whole_image_box(im.shape[1], im.shape[0])) if mode == "image" else
                       annotated_box(s.box, s.joints, s.labelled, dataset, im.shape[1], im.shape[0]))
            for s, im in zip(samples, images)]


def matched_person(result: Prediction, sample: Sample) -> Person:
    """Of the people a photo's prediction holds (everyone found, and its best candidate), the one whose box
    overlaps the annotated person's box (the labelled joints' box, `serve.localize.BOX_SCALE`) most; the best
    candidate when none overlaps it or nothing is labelled."""
    candidates = [*result.people, result.best]
    if not sample.labelled.any():
        return result.best
    truth = joints_box(sample.joints, sample.labelled, BOX_SCALE)
    overlap = [float(iou(centre_box(*p.box), truth)) for p in candidates]
    return candidates[int(np.argmax(overlap))] if max(overlap) > 0 else result.best


def predict_boxes(predictor: Predictor, dataset: PoseDataset, mode: str, batch_size: int = 32,
                  progress: bool = False, chunk: int = 256) -> list[tuple[Person, bool | None]]:
    """Predict a dataset's images with the boxes of `mode` (`boxes_for`), `chunk` images read at a time: per
    sample, (the person scored: `matched_person` with found boxes, else the given box's, whether anyone was
    found)."""
    from tqdm import tqdm

    if mode == "found" and not predictor.has_localizer:
        raise ValueError("found boxes need a person detector or localizer (a pipeline checkpoint, or --localizer)")
    boxes_for([], [], dataset.name, mode)  # refuse a bad mode before reading any image
    out: list[tuple[Person, bool | None]] = []
    for lo in tqdm(range(0, len(dataset), chunk), desc=f"predicting ({mode} boxes)", disable=not progress,
                   unit="chunk"):
        samples = dataset.samples[lo:lo + chunk]
        images = [read_image(s.image_path) for s in samples]
        results = predictor.predict_images(images, boxes_for(samples, images, dataset.name, mode), batch_size)
        out += [(matched_person(r, s) if mode == "found" else r.best, r.person_found)
                for r, s in zip(results, samples)]
    return out


def box_sources(text: str | None, predictor: Predictor, source: str | Path | None = None) -> list[str]:
    """The box sources of `--boxes` (default: found,annotated with a localizer, else annotated); DeepPoseError
    naming `source` (the checkpoint) for an unknown one or for found boxes without a localizer."""
    modes = [m.strip() for m in (text or ("found,annotated" if predictor.has_localizer else "annotated")).split(",")]
    for mode in modes:
        if mode not in BOX_SOURCES:
            raise DeepPoseError(None, f"--boxes: unknown box source {mode!r} ({', '.join(BOX_SOURCES)})")
    if "found" in modes and not predictor.has_localizer:
        raise DeepPoseError(source, "--boxes found needs a person detector or localizer (the shipped model, or "
                                    "--localizer)")
    return modes


def evaluate_boxes(predictor: Predictor, dataset: PoseDataset, mode: str, out: Path, title: str,
                   extra: dict[str, Any], batch_size: int = 32, progress: bool = False) -> dict[str, Any]:
    """Predict `dataset` with the boxes of `mode`, score it and write its report into `out` (a cascade's stage by
    stage); the metrics, with "boxes": how often the box held the person, found them, and the passes it took."""
    results = predict_boxes(predictor, dataset, mode, batch_size, progress=progress)
    pred = np.stack([r.stages for r, _ in results])
    confidence = np.stack([r.confidence for r, _ in results])
    held = person_in_box(np.stack([centre_box(*r.box) for r, _ in results]), dataset.joints(), dataset.labelled())
    found = None if results[0][1] is None else float(np.mean([f for _, f in results]))
    boxes = {"source": mode, "person_in_box": float(held.mean()), "person_found": found,
             "mean_passes": float(np.mean([r.passes for r, _ in results]))}
    extra = {**extra, "boxes": boxes,
             "confidence": confidence_report(pred[:, -1], confidence, dataset.joints(), dataset.labelled(),
                                             dataset.skeleton)}
    if predictor.is_cascade:
        return write_stage_report(out, pred, dataset, title, extra={**extra, "n_stages": pred.shape[1]})
    return write_report(out, pred[:, 0], dataset, title, extra=extra)


def print_summary(mode: str, metrics: dict[str, Any], out: Path, cascade: bool) -> None:
    """The lines `deeppose eval` prints for one box source."""
    if cascade:
        print(format_pcp_table({f"{mode[:5]} st{st['stage']}": st["pcp"] for st in metrics["stages"]}))
    print(f"{mode} boxes: PCK " + "  ".join(f"@{a}: {metrics['pck'][a]:.3f}" for a in ("0.05", "0.1", "0.2")) +
          f"   person in box (IoU >= 0.5 with the joints' box): {metrics['boxes']['person_in_box']:.3f}"
          f"   ({metrics['n_images']} images, {metrics['n_joints']} joints)   report: {out}")
    if conf := metrics["confidence"]:
        kept = "  ".join(f"{float(f):.0%}: {v:.3f}" for f, v in conf["pck_of_most_confident"].items())
        print(f"  confidence: AUROC {conf['auroc']:.3f} (right vs wrong at PCK@0.2); PCK@0.2 of the most "
              f"confident joints kept {kept}")


def evaluate(predictor: Predictor, dataset: PoseDataset, modes: list[str], out: str | Path, name: str,
             extra: dict[str, Any], batch_size: int = 32, progress: bool = False) -> dict[str, Any]:
    """`evaluate_boxes` for each box source: the first into `out`, the others into out/<source>; prints the
    summary and a PCP table, writes out/boxes.json and returns it ({source: PCK@0.2, PCP, boxes, report})."""
    if dataset.skeleton.name != predictor.skeleton.name:
        raise DeepPoseError(dataset.root, f"model predicts {predictor.skeleton.name} joints but {dataset.name} has "
                                          f"{dataset.skeleton.name}")
    out = Path(out)
    summary, rows = {}, {}
    for i, mode in enumerate(modes):
        folder = out if i == 0 else out / mode
        title = f"{name} on {dataset.name} {dataset.split}, {mode} boxes"
        metrics = evaluate_boxes(predictor, dataset, mode, folder, title, extra, batch_size, progress)
        rows[f"{mode} boxes"[:14]] = metrics["pcp"]
        summary[mode] = {"pck@0.2": metrics["pck"]["0.2"], "pcp": metrics["pcp"]["mean"], **metrics["boxes"],
                         "report": str(folder)}
        print_summary(mode, metrics, folder, predictor.is_cascade)
    print(format_pcp_table(rows))
    write_json(out / "boxes.json", summary)
    return summary
