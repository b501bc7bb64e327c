"""The `deeppose` command line: `data check|synth`, `train`, `eval`, `predict`, `compare`, `ship`, `demo`.

Bad input ends with one line `deeppose: error: <file>: <problem>` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deeppose.errors import DeepPoseError
from deeppose.geometry import centre_box
from deeppose.paths import DEFAULT_MODEL

if TYPE_CHECKING:
    from deeppose.config import TrainConfig

EXIT_BAD_INPUT = 2


def _cmd_data_check(args: argparse.Namespace) -> int:
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


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from deeppose.data.synthetic import write_synthetic

    counts = {k: v for k, v in (("train", args.train), ("val", args.val), ("test", args.test)) if v > 0}
    if not counts:
        raise DeepPoseError(args.root, "nothing to generate: all split counts are 0")
    path = write_synthetic(args.root, counts, seed=args.seed, size=args.size, progress=sys.stderr.isatty())
    print(f"wrote {sum(counts.values())} synthetic people ({counts}) to {path}")
    return 0


def _cmd_ship(args: argparse.Namespace) -> int:
    from deeppose.models.checkpoint import bundle_checkpoint, ship_checkpoint

    if args.localizer:
        path = bundle_checkpoint(args.checkpoint, args.localizer, args.out, half=not args.fp32)
    else:
        path = ship_checkpoint(args.checkpoint, args.out, half=not args.fp32)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
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


def _cmd_train(args: argparse.Namespace) -> int:
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
        plan = plan_epochs(cfg, minutes, out)
        epochs = plan["epochs"]
        print(f"budget: {epochs:g} epochs of {plan['n_train']} images fit {minutes:g} minutes at "
              f"{plan['probe_images_per_s']:g} images/s (probe; other processes: {plan['other_cores']:g} cores)")
    return replace(cfg, epochs=epochs, max_minutes=1.5 * minutes)


def _cmd_eval(args: argparse.Namespace) -> int:
    from deeppose.data import load_dataset
    from deeppose.eval.boxes import box_sources, evaluate
    from deeppose.paths import data_root

    predictor = _predictor(args)
    modes = box_sources(args.boxes, predictor, args.checkpoint)
    dataset = load_dataset(args.dataset, Path(args.root) if args.root else data_root() / args.dataset, args.split)
    name = Path(args.checkpoint or "default").stem + (" + flip" if args.flip else "")
    evaluate(predictor, dataset, modes, args.out, name, {"checkpoint": str(args.checkpoint or "default"),
                                                         "flip_test": args.flip}, args.batch_size, sys.stderr.isatty())
    return 0


def _parse_box(text: str) -> np.ndarray:
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError:
        raise DeepPoseError(None, f"--box must be x,y,w,h (top-left corner, width, height), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise DeepPoseError(None, f"--box width and height must be positive, got {text!r}")
    return centre_box(x, y, w, h)  # corner form on the command line, (c_x, c_y, w, h) inside


def _predictor(args: argparse.Namespace):  # noqa: ANN202 (Predictor imported lazily)
    from deeppose.paths import default_model
    from deeppose.serve.predictor import Predictor

    checkpoint = args.checkpoint or default_model()
    return Predictor.from_checkpoint(checkpoint, flip=args.flip, stages=args.stages, localizer=args.localizer,
                                     localize=not args.no_localize, recrops=args.recrops)


def _cmd_predict(args: argparse.Namespace) -> int:
    from deeppose.serve.files import predict_files

    predictor = _predictor(args)
    n = predict_files(predictor, args.inputs, args.out, _parse_box(args.box) if args.box else None,
                      args.min_confidence)
    print(f"wrote {n} predictions to {args.out}")
    return 0


def _cmd_localizer_train(args: argparse.Namespace) -> int:
    from deeppose.config import read_config_file
    from deeppose.train.localizer import localizer_config, train_localizer

    cfg = localizer_config(read_config_file(args.config) if args.config else {})
    row = train_localizer(cfg, args.out, resume=args.resume, progress=sys.stderr.isatty(),
                          stop_after_steps=args.stop_after_steps)
    print(json.dumps(row.summary()))
    return 0


def _cmd_localizer_tune(args: argparse.Namespace) -> int:
    from deeppose.train.localizer_tune import tune_box_rule

    result = tune_box_rule(args.checkpoint, args.pose, args.out, root=args.root, progress=sys.stderr.isatty())
    best = result["best"]
    print(f"box rule: scale {best['box_scale']:g}, {best['recrops']} re-crops (validation PCK@0.2: LSP "
          f"{best['lsp_val_pck']:.3f}, LSPET {best['lspet_val_pck']:.3f}); wrote {args.out}")
    return 0


def _cmd_localizer_refit(args: argparse.Namespace) -> int:
    from deeppose.train.localizer_tune import refit_presence

    r = refit_presence(args.checkpoint, args.out, args.views, root=args.root, progress=sys.stderr.isatty())
    print(f"presence layer refit on {r['n_views']} training views ({r['n_negative']} with nobody): training error "
          f"{r['train_error']:.4f}; wrote {args.out}")
    return 0


def _cmd_localizer_calibrate(args: argparse.Namespace) -> int:
    from deeppose.train.localizer_tune import calibrate_localizer

    cal = calibrate_localizer(args.checkpoint, args.out, args.root, progress=sys.stderr.isatty())
    print(f"person_score = sigmoid({cal['a']:.3f} * logit + {cal['b']:.3f}) from {cal['n_positive']} photos with "
          f"and {cal['n_negative']} without a person; validation errors: {cal['val_error_positive']:.3f} missed, "
          f"{cal['val_error_negative']:.3f} false; wrote {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
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


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose and set up the model, shared by predict and eval."""
    parser.add_argument("--checkpoint", help="model checkpoint (default: the shipped models/" + DEFAULT_MODEL + ")")
    parser.add_argument("--localizer", help="a person localizer to put in front of a plain pose checkpoint: a "
                                            "localizer checkpoint, or a pipeline (e.g. the shipped model) whose "
                                            "localizer is taken")
    parser.add_argument("--no-localize", action="store_true",
                        help="do not look for the person: the whole image is the box (LSP's convention)")
    parser.add_argument("--recrops", type=int, help="re-crops on the model's own prediction after localization "
                                                     "(default: the model's setting, else 2)")
    parser.add_argument("--flip", action="store_true", help="flip test: average with the mirrored prediction")
    parser.add_argument("--stages", type=int, help="cascade: run stages 1..N (default all)")


def _add_data_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose data`."""
    from deeppose.data.registry import LOADERS

    data = sub.add_parser("data", help="inspect and generate datasets").add_subparsers(dest="data_command",
                                                                                      required=True)
    check = data.add_parser("check", help="counts, visibility, image sizes and bounds of a dataset folder")
    check.add_argument("--dataset", required=True, choices=sorted(LOADERS))
    check.add_argument("--root", help="dataset folder or annotation file (default: $DEEPPOSE_DATA/<dataset>)")
    check.add_argument("--split", default="train", help="train | test | all | val (default: train)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--sheet", help="also render a contact sheet of stick figures to this PNG")
    check.add_argument("--sheet-count", type=int, default=24, help="images on the contact sheet (default 24)")
    check.add_argument("--no-verify", action="store_true", help="do not decode every image (faster)")
    check.add_argument("--skip-bad", action="store_true", help="skip bad samples (counted) instead of failing")
    check.set_defaults(func=_cmd_data_check)

    synth = data.add_parser("synth", help="generate a synthetic dataset of drawn people (LSP joints)")
    synth.add_argument("--root", required=True, help="output folder")
    synth.add_argument("--train", type=int, default=1000)
    synth.add_argument("--val", type=int, default=100)
    synth.add_argument("--test", type=int, default=200)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=int, default=128, help="image side in pixels")
    synth.set_defaults(func=_cmd_data_synth)


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose train`."""
    train = sub.add_parser("train", help="train a stage-1 regressor, or a cascade (cascade.stages > 1), from a config")
    train.add_argument("--config", help="YAML/JSON config (default: built-in defaults)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4")
    train.add_argument("--out", required=True, help="run folder (checkpoints, logs, config.json)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    train.add_argument("--stop-after-steps", type=int, default=0, help="stop with a checkpoint after N steps")
    train.add_argument("--stage", type=int, help="cascade: train only up to this stage (finished stages are skipped)")
    train.add_argument("--budget-minutes", type=float,
                       help="set epochs from a throughput probe so that the schedule ends within this many minutes "
                            "on this machine (idle; max_minutes becomes 1.5x as a safety stop)")
    train.set_defaults(func=_cmd_train)


def _add_eval_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose eval`."""
    from deeppose.data.registry import LOADERS

    ev = sub.add_parser("eval", help="evaluate a model: metrics.json, PCP table, PDJ plot, stick figures")
    ev.add_argument("--dataset", default="lsp", choices=sorted(LOADERS))
    ev.add_argument("--root", help="dataset folder (default: $DEEPPOSE_DATA/<dataset>)")
    ev.add_argument("--split", default="test")
    ev.add_argument("--boxes", help="comma-separated person boxes to score with: found (the system finds the "
                                    "person; never read from the annotations), annotated (the dataset's box, the "
                                    "labelled joints' box for whole photos such as LSPET, else the whole image), "
                                    "image (the whole image). Default: found,annotated with a localizer, else "
                                    "annotated. The first is written to --out, the others to --out/<source>/")
    _model_arguments(ev)
    ev.add_argument("--out", required=True, help="report folder")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.set_defaults(func=_cmd_eval)


def _add_predict_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose predict`."""
    pr = sub.add_parser("predict", help="predict joints on your images: one JSON and one PNG per image")
    pr.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    pr.add_argument("--out", required=True)
    pr.add_argument("--box", help="person box x,y,w,h in pixels (default: the person is found)")
    _model_arguments(pr)
    pr.add_argument("--min-confidence", type=float, default=0.0,
                    help="draw only joints whose confidence reaches this (the JSON keeps them all)")
    pr.set_defaults(func=_cmd_predict)


def _add_localizer_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose localizer`."""
    loc = sub.add_parser("localizer", help="the person localizer: train it on whole photos, calibrate its score")
    loc_sub = loc.add_subparsers(dest="localizer_command", required=True)
    lt = loc_sub.add_parser("train", help="train the localizer (resumable)")
    lt.add_argument("--config", help="YAML/JSON localizer config (default: built-in defaults)")
    lt.add_argument("--out", required=True, help="run folder")
    lt.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    lt.add_argument("--stop-after-steps", type=int, default=0, help="stop with a checkpoint after N steps")
    lt.set_defaults(func=_cmd_localizer_train)
    lc = loc_sub.add_parser("calibrate", help="fit person_score's calibration on the validation photos")
    lc.add_argument("--checkpoint", required=True, help="a localizer run's best.pt")
    lc.add_argument("--out", required=True, help="the calibrated localizer checkpoint to write")
    lc.add_argument("--root", help="folder holding lsp/ and lspet/ (default: $DEEPPOSE_DATA)")
    lc.set_defaults(func=_cmd_localizer_calibrate)
    lr = loc_sub.add_parser("refit-presence", help="refit the presence layer alone on training views, the "
                                                   "letterboxed nobody views included")
    lr.add_argument("--checkpoint", required=True, help="a localizer checkpoint")
    lr.add_argument("--out", required=True, help="the localizer checkpoint to write")
    lr.add_argument("--views", type=int, default=4000, help="training views to fit on (default 4000)")
    lr.add_argument("--root", help="folder holding lsp/ and lspet/ (default: $DEEPPOSE_DATA)")
    lr.set_defaults(func=_cmd_localizer_refit)
    lu = loc_sub.add_parser("tune", help="choose the box rule's scale and the re-crops on the validation photos")
    lu.add_argument("--checkpoint", required=True, help="a localizer checkpoint")
    lu.add_argument("--pose", required=True, help="the pose model (stage 1 or cascade) it will run in front of")
    lu.add_argument("--out", required=True, help="the localizer checkpoint to write, with the chosen rule")
    lu.add_argument("--root", help="folder holding lsp/ and lspet/ (default: $DEEPPOSE_DATA)")
    lu.set_defaults(func=_cmd_localizer_tune)


def _add_compare_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose compare`."""
    cmp = sub.add_parser("compare", help="train, score and time every head of a comparison spec on LSP (resumable)")
    cmp.add_argument("--spec", default="configs/compare/heads_mobilenet_v2.yaml")
    cmp.add_argument("--out", required=True, help="run folder; finished entries are kept and skipped")
    cmp.add_argument("--only", nargs="*", help="entry names to run (default all)")
    cmp.add_argument("--results", help="results file (default OUT/comparison.json, plot beside it): its rows "
                                        "are kept and skipped, every new row is written to it")
    cmp.add_argument("--report-only", action="store_true", help="only tabulate and plot the finished entries")
    cmp.add_argument("--retime", action="store_true", help="measure ms/image of the finished entries again from "
                                                           "their architectures (run on an idle machine)")
    cmp.set_defaults(func=_cmd_compare)


def _add_ship_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose ship`."""
    ship = sub.add_parser("ship", help="inference-only copy of a checkpoint (fp16 weights, no optimizer state)")
    ship.add_argument("--checkpoint", required=True)
    ship.add_argument("--out", required=True)
    ship.add_argument("--fp32", action="store_true", help="keep float32 weights")
    ship.add_argument("--localizer", help="a person localizer checkpoint to put in front of the model (one file)")
    ship.set_defaults(func=_cmd_ship)


def _add_demo_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose demo`."""
    demo = sub.add_parser("demo", help="the shipped model on real photos of different kinds (contact sheet); "
                                       "--train: train the small regressor on synthetic people")
    demo.add_argument("--out", default="reports/demo", help="report folder (default reports/demo)")
    demo.add_argument("--checkpoint", help="model for the photo demo (default: the shipped model)")
    demo.add_argument("--train", action="store_true",
                      help="instead: synthetic people -> train the small regressor -> evaluate -> report folder")
    demo.add_argument("--epochs", type=int, default=30, help="--train: training epochs (default 30, about 2 min)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeppose", description="Human pose estimation by coordinate regression.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data_command, _add_train_command, _add_eval_command, _add_predict_command,
                _add_localizer_command, _add_compare_command, _add_ship_command, _add_demo_command):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DeepPoseError as err:
        print(f"deeppose: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
