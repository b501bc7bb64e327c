"""What each `deeppose` command does (`cli.parser` builds the command line, `cli.main` runs it).

Bad input ends with one line `deeppose: error: <file>: <problem>` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deeppose.errors import DeepPoseError
from deeppose.files import writable_folder

if TYPE_CHECKING:
    from deeppose.config import TrainConfig


def cmd_data_check(args: argparse.Namespace) -> int:
    from deeppose.data import load_dataset
    from deeppose.data.check import format_summary, render_sheet, summarize
    from deeppose.paths import data_root

    root = Path(args.root) if args.root else data_root() / args.dataset
    dataset = load_dataset(args.dataset, root, args.split, on_bad="skip" if args.skip_bad else "error")
    summary = summarize(dataset, verify=not args.no_verify, progress=not args.json and sys.stderr.isatty())
    if args.sheet:
        summary["sheet"] = str(render_sheet(dataset, args.sheet, n=args.sheet_count))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    if args.sheet and not args.json:
        print(f"  contact sheet        {args.sheet}")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from deeppose.data.synthetic import write_synthetic

    counts = {k: v for k, v in (("train", args.train), ("val", args.val), ("test", args.test)) if v > 0}
    if not counts:
        raise DeepPoseError(args.root, "nothing to generate: all split counts are 0")
    path = write_synthetic(args.root, counts, seed=args.seed, size=args.size, progress=sys.stderr.isatty())
    print(f"wrote {sum(counts.values())} synthetic people ({counts}) to {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from deeppose.serve.export import export_onnx

    sidecar = export_onnx(args.checkpoint, args.out, int8=args.int8, calibration=args.calibration,
                          n_calibration=args.calibration_images, root=args.root, model_version=args.model_version)
    files = [sidecar["pose"]["file"]] + ([sidecar["localizer"]["file"]] if sidecar["localizer"] else [])
    print(f"wrote {', '.join(files)} ({sidecar['precision']}) and {Path(args.out).with_suffix('.json').name} "
          f"to {Path(args.out).parent}")
    return 0


def cmd_import_tflite(args: argparse.Namespace) -> int:
    from deeppose.data.registry import load_dataset
    from deeppose.models.tflite_import import import_tflite_backbone, photo_batches, save_backbone
    from deeppose.paths import data_root

    out = Path(args.out)
    if out.resolve() == Path(args.tflite).resolve():
        raise DeepPoseError(out, "--out is the input file; it is never overwritten")
    writable_folder(out.parent)  # before reading photos and weights, not after
    batches = []
    if args.calibration_images > 0:
        name, _, split = args.calibration.partition(":")
        root = Path(args.root) if args.root else data_root()
        dataset = load_dataset(name, root / name, split or "train")
        batches = photo_batches([s.image_path for s in dataset.samples[: args.calibration_images]], args.size)
    if args.pose_model and args.detector:
        raise DeepPoseError(None, "--pose-model and --detector each write a whole network: give one")
    if args.detector:
        from deeppose.models.checkpoint import save_checkpoint
        from deeppose.models.movenet_import import import_movenet_detector

        detector, meta = import_movenet_detector(args.tflite, args.detector, batches)
        save_checkpoint(out, detector, meta)
        print(f"wrote {out}: a person detector at {args.detector} px (MoveNet's backbone, pyramid, centre and "
              f"keypoint-regression branches, scores uncalibrated); train from it with init={out}")
        return 0
    if args.pose_model:
        from deeppose.models.checkpoint import save_checkpoint
        from deeppose.models.movenet_import import import_movenet_pose

        model, meta = import_movenet_pose(args.tflite, args.pose_model, batches)
        save_checkpoint(out, model, meta)
        print(f"wrote {out}: a {meta.num_joints}-joint pose network at {args.pose_model} px (MoveNet's backbone, "
              f"pyramid and keypoint branch, DSNT read-out); train from it with model.init={out}, or eval it")
        return 0
    state, provenance = import_tflite_backbone(args.tflite, batches)
    save_backbone(state, provenance, out)
    print(f"wrote {out} ({len(state)} tensors, {provenance['layers']} convolutions from {provenance['source']}) "
          f"and {out.name}.json; train from it with model.backbone_weights={out} model.padding=tf_same")
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    from deeppose.models.checkpoint import bundle_checkpoint, ship_checkpoint

    if args.localizer:
        path = bundle_checkpoint(args.checkpoint, args.localizer, args.out, half=not args.fp32)
    else:
        path = ship_checkpoint(args.checkpoint, args.out, half=not args.fp32)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from deeppose.demo import run_demo, run_photo_demo
    from deeppose.paths import data_root, default_model

    if args.train:
        if args.epochs <= 0:
            raise DeepPoseError(None, f"--epochs must be positive, got {args.epochs}")
        run_demo(args.out, epochs=args.epochs, seed=args.seed, progress=sys.stderr.isatty())
        return 0
    try:
        run_photo_demo(args.out, args.checkpoint or default_model(), data_root(), seed=args.seed)
    except ValueError as exc:
        raise DeepPoseError(None, str(exc)) from None
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from deeppose.config import load_config
    from deeppose.train.loop import fit

    cfg = load_config(args.config, args.overrides)
    if args.budget_minutes is not None:
        cfg = _budgeted(cfg, Path(args.out), args.budget_minutes, args.resume)
    if cfg.cascade.stages > 1:
        from deeppose.train.cascade import train_cascade

        if args.stop_after_steps:
            raise DeepPoseError(args.config, "--stop-after-steps applies to one stage; use --stage and --resume")
        summary = train_cascade(cfg, args.out, resume=args.resume, upto_stage=args.stage,
                                progress=sys.stderr.isatty())
    else:
        summary = fit(cfg, args.out, resume=args.resume, stop_after_steps=args.stop_after_steps,
                      progress=sys.stderr.isatty()).summary()
    print(json.dumps(summary))
    return 0


def _budgeted(cfg: TrainConfig, out: Path, minutes: float, resume: bool) -> TrainConfig:
    """`train --budget-minutes`: the epochs that fit the budget on this machine (a throughput probe), kept in
    the run's config.json so that a resumed run goes on with the same schedule."""
    from dataclasses import replace

    from deeppose.train.budget import plan_epochs

    if cfg.cascade.stages > 1:
        raise DeepPoseError(out, "--budget-minutes plans a stage-1 run; give a cascade's stages their epochs")
    saved = out / "config.json"
    if resume and saved.is_file():
        try:
            epochs = float(json.loads(saved.read_text(encoding="utf-8"))["epochs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DeepPoseError(saved, f"not a run config with its epochs ({type(exc).__name__}: {exc})") from None
        print(f"budget: {epochs:g} epochs, as planned when the run started")
    else:
        from deeppose.train import distributed

        # under torchrun rank 0 probes (one process's speed) and every process takes its plan
        plan = distributed.on_main(distributed.world(), lambda: plan_epochs(cfg, minutes, out))
        epochs = plan["epochs"]
        print(f"budget: {epochs:g} epochs of {plan['n_train']} images fit {minutes:g} minutes at "
              f"{plan['probe_images_per_s']:g} images/s (probe; other processes: {plan['other_cores']:g} cores)")
    return replace(cfg, epochs=epochs, max_minutes=1.5 * minutes)


def cmd_eval(args: argparse.Namespace) -> int:
    from deeppose.data import load_dataset
    from deeppose.eval.boxes import box_sources, evaluate
    from deeppose.paths import data_root

    predictor = _predictor(args)
    modes = box_sources(args.boxes, predictor, args.checkpoint)
    dataset = load_dataset(args.dataset, Path(args.root) if args.root else data_root() / args.dataset, args.split)
    writable_folder(args.out)  # before the long run, not after it
    name = Path(args.checkpoint or "default").stem + (" + flip" if args.flip else "")
    evaluate(predictor, dataset, modes, args.out, name, {"checkpoint": str(args.checkpoint or "default"),
                                                         "flip_test": args.flip}, args.batch_size, sys.stderr.isatty())
    return 0


def _predictor(args: argparse.Namespace):  # noqa: ANN202 (Predictor imported lazily)
    from deeppose.paths import default_model
    from deeppose.serve.predictor import Predictor

    checkpoint = args.checkpoint or default_model()
    if args.threads:  # PyTorch's, for the process; an export's ONNX Runtime session takes its own
        import torch

        torch.set_num_threads(args.threads)
    return Predictor.from_checkpoint(checkpoint, flip=args.flip, stages=args.stages, localizer=args.localizer,
                                     localize=not args.no_localize, recrops=args.recrops, threads=args.threads,
                                     max_people=args.max_people)


def cmd_predict(args: argparse.Namespace) -> int:
    from deeppose.serve.files import plan_job, predict_files, read_boxes
    from deeppose.serve.images import parse_box
    from deeppose.serve.track import OneEuro
    from deeppose.serve.video import VIDEO_SUFFIXES, predict_video

    videos = [i for i in args.inputs if i.isdigit() or "://" in i or Path(i).suffix.lower() in VIDEO_SUFFIXES]
    images = [i for i in args.inputs if i not in videos]
    if args.box and args.boxes:
        raise DeepPoseError(args.boxes, "give --box (every image) or --boxes (one per image), not both")
    # the inputs and options checked before the model loads, the output folder before any prediction
    job = plan_job(images, args.out) if images else None
    box, boxes = parse_box(args.box) if args.box else None, read_boxes(args.boxes) if args.boxes else None
    predictor = _predictor(args)
    writable_folder(args.out)
    for video in videos:
        done = predict_video(predictor, int(video) if video.isdigit() else video, args.out,
                             None if args.no_smooth else OneEuro(), args.max_frames, progress=sys.stderr.isatty(),
                             redetect_every=args.redetect_every)
        print(f"{video}: {done['frames']} frames at {done['fps']:g} frames/s, {done['tracks']} "
              f"{'track' if done['tracks'] == 1 else 'tracks'} -> {done['mp4']}, {done['jsonl']}")
    if job is not None:
        n, skipped = predict_files(predictor, images, args.out, box, args.min_confidence, args.skip_bad, boxes, job)
        for path in skipped:
            print(f"skipped {path} (not an image OpenCV decodes)")
        print(f"wrote {n} predictions ({2 * n} files) to {args.out}" + (f"; skipped {len(skipped)} files"
                                                                         if skipped else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import socket

    from deeppose.paths import default_model
    from deeppose.serve.server import ServerLimits, serve

    try:
        limits = ServerLimits(args.max_upload_mb, args.max_megapixels, args.timeout, args.workers, args.queue)
    except ValueError as exc:
        raise DeepPoseError(None, str(exc)) from None
    try:  # before the model loads: a port in use is one line, not a traceback after start-up
        with socket.create_server((args.host, args.port)):
            pass
    except OSError as exc:
        raise DeepPoseError(f"{args.host}:{args.port}", f"cannot listen there ({exc.strerror or exc})") from None
    predictor = _predictor(args)
    serve(predictor, args.host, args.port, limits, Path(args.checkpoint or default_model()).name)
    return 0


def cmd_localizer_train(args: argparse.Namespace) -> int:
    from deeppose.config import read_config_file
    from deeppose.train.localizer import localizer_config, train_localizer

    cfg = localizer_config(read_config_file(args.config) if args.config else {})
    row = train_localizer(cfg, args.out, resume=args.resume, progress=sys.stderr.isatty(),
                          stop_after_steps=args.stop_after_steps)
    print(json.dumps(row.summary()))
    return 0


def cmd_detector_train(args: argparse.Namespace) -> int:
    from deeppose.config import read_config_file
    from deeppose.train.detector import detector_config, train_detector

    cfg = detector_config(read_config_file(args.config) if args.config else {})
    row = train_detector(cfg, args.out, resume=args.resume, progress=sys.stderr.isatty(),
                         stop_after_steps=args.stop_after_steps)
    print(json.dumps(row.summary()))
    return 0


def cmd_detector_calibrate(args: argparse.Namespace) -> int:
    from deeppose.train.detector_tune import calibrate_detector

    cal = calibrate_detector(args.checkpoint, args.pose, args.out, args.root)
    print(f"person score = sigmoid({cal['a']:.3f} * logit + {cal['c']:.3f} * log(pose confidence) + {cal['b']:.3f}) "
          f"from {cal['n_positive']} photos with and {cal['n_negative']} without people; held-out photos: "
          f"{cal['false_negatives']:.3f} of photos of people with nobody found, {cal['false_positives']:.3f} of photos "
          f"with nobody given someone; wrote {args.out}")
    return 0


def cmd_detector_mine(args: argparse.Namespace) -> int:
    from deeppose.train.detector import mine_hard_negatives

    writable_folder(Path(args.out).parent)
    r = mine_hard_negatives(args.checkpoint, args.out, args.root)
    print(f"{r['n']} training photos with nobody scored: mean centre probability {r['mean']:.3f}, a person found in "
          f"{r['above_0.5']:.3f} of them; wrote {args.out}")
    return 0


def cmd_detector_tune(args: argparse.Namespace) -> int:
    from deeppose.train.detector_tune import tune_detector

    result = tune_detector(args.checkpoint, args.pose, args.out, root=args.root, progress=sys.stderr.isatty())
    best = result["best"]
    print(f"box rule: scale {best['box_scale']:g}, {best['recrops']} re-crops (validation PCK@0.2 of the person "
          f"found: LSP {best['lsp_val_pck']:.3f}, LSPET {best['lspet_val_pck']:.3f}); wrote {args.out}")
    return 0


def cmd_localizer_tune(args: argparse.Namespace) -> int:
    from deeppose.train.localizer_tune import tune_box_rule

    result = tune_box_rule(args.checkpoint, args.pose, args.out, root=args.root, progress=sys.stderr.isatty())
    best = result["best"]
    print(f"box rule: scale {best['box_scale']:g}, {best['recrops']} re-crops (validation PCK@0.2: LSP "
          f"{best['lsp_val_pck']:.3f}, LSPET {best['lspet_val_pck']:.3f}); wrote {args.out}")
    return 0


def cmd_localizer_refit(args: argparse.Namespace) -> int:
    from deeppose.train.localizer_tune import refit_presence

    r = refit_presence(args.checkpoint, args.out, args.views, root=args.root, progress=sys.stderr.isatty())
    print(f"presence layer refit on {r['n_views']} training views ({r['n_negative']} with nobody): training error "
          f"{r['train_error']:.4f}; wrote {args.out}")
    return 0


def cmd_localizer_calibrate(args: argparse.Namespace) -> int:
    from deeppose.train.localizer_tune import calibrate_localizer

    cal = calibrate_localizer(args.checkpoint, args.out, args.root, progress=sys.stderr.isatty())
    print(f"person_score = sigmoid({cal['a']:.3f} * logit + {cal['b']:.3f}) from {cal['n_positive']} photos with "
          f"and {cal['n_negative']} without a person; validation errors: {cal['val_error_positive']:.3f} missed, "
          f"{cal['val_error_negative']:.3f} false; wrote {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from deeppose.eval.comparison import format_rows
    from deeppose.train import compare

    results = Path(args.results) if args.results else Path(args.out) / "comparison.json"
    rows = compare.carry_on(args.spec, args.out, results, args.only or None,
                            train=not (args.report_only or args.retime), retime_rows=args.retime,
                            progress=sys.stderr.isatty())
    spec = compare.load_spec(args.spec)
    print(format_rows(rows, spec.references))
    pending = [e.name for e in spec.entries if e.name not in {r["name"] for r in rows}]
    print(f"wrote {results} and {results.with_suffix('.png')}; pending: {', '.join(pending) or 'none'}")
    return 0
