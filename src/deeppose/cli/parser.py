"""The `deeppose` command line's arguments: one builder per command, with its help text."""

from __future__ import annotations

import argparse

from deeppose import __version__
from deeppose.cli.commands import (
    cmd_compare,
    cmd_data_check,
    cmd_data_synth,
    cmd_demo,
    cmd_detector_calibrate,
    cmd_detector_mine,
    cmd_detector_train,
    cmd_detector_tune,
    cmd_eval,
    cmd_export,
    cmd_import_tflite,
    cmd_localizer_calibrate,
    cmd_localizer_refit,
    cmd_localizer_train,
    cmd_localizer_tune,
    cmd_predict,
    cmd_serve,
    cmd_ship,
    cmd_train,
)
from deeppose.paths import DEFAULT_MODEL, default_model_version


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose and set up the model, shared by predict and eval."""
    parser.add_argument("--checkpoint", help="model checkpoint (default: the shipped models/" + DEFAULT_MODEL + ")")
    parser.add_argument("--localizer", help="a person detector (or one-person localizer) to put in front of a plain "
                                            "pose checkpoint: its checkpoint, or a pipeline (e.g. the shipped model) "
                                            "whose finder is taken")
    parser.add_argument("--no-localize", action="store_true",
                        help="do not look for people: the whole image is the box (LSP's convention)")
    parser.add_argument("--recrops", type=int, help="re-crops on the model's own prediction after finding people "
                                                     "(default: the model's setting, else 2)")
    parser.add_argument("--max-people", type=_positive_int, help="report at most N people per image, best first "
                                                                 "(default: everyone found)")
    parser.add_argument("--flip", action="store_true", help="flip test: average with the mirrored prediction")
    parser.add_argument("--stages", type=int, help="cascade: run stages 1..N (default all)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: the runtime's choice)")


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
    check.set_defaults(func=cmd_data_check)

    synth = data.add_parser("synth", help="generate a synthetic dataset of drawn people (LSP joints)")
    synth.add_argument("--root", required=True, help="output folder")
    synth.add_argument("--train", type=int, default=1000)
    synth.add_argument("--val", type=int, default=100)
    synth.add_argument("--test", type=int, default=200)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=int, default=128, help="image side in pixels")
    synth.set_defaults(func=cmd_data_synth)


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
    train.set_defaults(func=cmd_train)


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
    ev.set_defaults(func=cmd_eval)


def _add_predict_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose predict`."""
    pr = sub.add_parser("predict", help="predict joints on your images (a JSON and a picture each, under their "
                                                 "relative paths) or videos")
    pr.add_argument("inputs", nargs="+", metavar="IMAGE_DIR_OR_VIDEO",
                    help="images, folders of images, videos (.mp4, .avi, .mov, .mkv, .webm), a stream URL or a "
                         "camera index")
    pr.add_argument("--out", required=True)
    pr.add_argument("--box", help="person box x,y,w,h in pixels from the top-left corner, for every image (default: "
                                  "the person is found)")
    _model_arguments(pr)
    pr.add_argument("--min-confidence", type=float, default=0.0,
                    help="draw only joints whose confidence reaches this (the JSON keeps them all)")
    pr.add_argument("--boxes", help="a JSON file of one box per image: {\"photo.jpg\": [x, y, w, h], ...} (keys: "
                                    "the path given, the path relative to the inputs, or the file name); the other "
                                    "images are found")
    pr.add_argument("--skip-bad", action="store_true", help="skip (and list) images that cannot be decoded instead "
                                                             "of stopping at the first")
    pr.add_argument("--no-smooth", action="store_true", help="video: leave the joints unfiltered (default: One-Euro, "
                                                               "min_cutoff 1 Hz, beta 0.01, d_cutoff 1 Hz)")
    pr.add_argument("--max-frames", type=int, default=0, help="video: stop after N frames (default: all)")
    pr.add_argument("--redetect-every", type=_positive_int, default=10,
                    help="video: find the people afresh every N frames (default 10; also whenever one is lost)")
    pr.set_defaults(func=cmd_predict)


def _add_serve_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose serve`."""
    sv = sub.add_parser("serve", help="serve the model over HTTP: a web page at /, POST /v1/pose (multipart "
                                      "'image', optional 'box'), GET /healthz")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                                                        "only; 0.0.0.0 for every interface)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _model_arguments(sv)
    sv.add_argument("--workers", type=int, default=1, help="predictions run at once (default 1; each uses "
                                                           "--threads)")
    sv.add_argument("--queue", type=int, default=8, help="requests that may wait for a worker; beyond, 503 with "
                                                         "Retry-After (default 8)")
    sv.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MiB (default 20)")
    sv.add_argument("--max-megapixels", type=float, default=40.0, help="largest image (default 40)")
    sv.add_argument("--timeout", type=float, default=30.0, help="seconds a request may take, queue included "
                                                                "(default 30; 504 beyond)")
    sv.set_defaults(func=cmd_serve)


def _add_localizer_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose localizer`."""
    loc = sub.add_parser("localizer", help="the person localizer: train it on whole photos, calibrate its score")
    loc_sub = loc.add_subparsers(dest="localizer_command", required=True)
    lt = loc_sub.add_parser("train", help="train the localizer (resumable)")
    lt.add_argument("--config", help="YAML/JSON localizer config (default: built-in defaults)")
    lt.add_argument("--out", required=True, help="run folder")
    lt.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    lt.add_argument("--stop-after-steps", type=int, default=0, help="stop with a checkpoint after N steps")
    lt.set_defaults(func=cmd_localizer_train)
    lc = loc_sub.add_parser("calibrate", help="fit person_score's calibration on the validation photos")
    lc.add_argument("--checkpoint", required=True, help="a localizer run's best.pt")
    lc.add_argument("--out", required=True, help="the calibrated localizer checkpoint to write")
    lc.add_argument("--root", help="folder holding lsp/ and lspet/ (default: $DEEPPOSE_DATA)")
    lc.set_defaults(func=cmd_localizer_calibrate)
    lr = loc_sub.add_parser("refit-presence", help="refit the presence layer alone on training views, the "
                                                   "letterboxed nobody views included")
    lr.add_argument("--checkpoint", required=True, help="a localizer checkpoint")
    lr.add_argument("--out", required=True, help="the localizer checkpoint to write")
    lr.add_argument("--views", type=int, default=4000, help="training views to fit on (default 4000)")
    lr.add_argument("--root", help="folder holding lsp/ and lspet/ (default: $DEEPPOSE_DATA)")
    lr.set_defaults(func=cmd_localizer_refit)
    lu = loc_sub.add_parser("tune", help="choose the box rule's scale and the re-crops on the validation photos")
    lu.add_argument("--checkpoint", required=True, help="a localizer checkpoint")
    lu.add_argument("--pose", required=True, help="the pose model (stage 1 or cascade) it will run in front of")
    lu.add_argument("--out", required=True, help="the localizer checkpoint to write, with the chosen rule")
    lu.add_argument("--root", help="folder holding lsp/ and lspet/ (default: $DEEPPOSE_DATA)")
    lu.set_defaults(func=cmd_localizer_tune)


def _add_detector_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose detector`."""
    det = sub.add_parser("detector", help="the person detector: train it on mosaics and photos with nobody, "
                                          "calibrate its scores")
    det_sub = det.add_subparsers(dest="detector_command", required=True)
    dt = det_sub.add_parser("train", help="train the detector (resumable)")
    dt.add_argument("--config", help="YAML/JSON detector config (default: built-in defaults)")
    dt.add_argument("--out", required=True, help="run folder")
    dt.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    dt.add_argument("--stop-after-steps", type=int, default=0, help="stop with a checkpoint after N steps")
    dt.set_defaults(func=cmd_detector_train)
    dm = det_sub.add_parser("mine", help="hard-negative mining: score the training photos with nobody in them, for "
                                         "a next run's hard_negatives")
    dm.add_argument("--checkpoint", required=True, help="a detector checkpoint")
    dm.add_argument("--out", required=True, help="the mining file (JSON) to write")
    dm.add_argument("--root", help="folder holding lsp/, lspet/ and negatives/ (default: $DEEPPOSE_DATA)")
    dm.set_defaults(func=cmd_detector_mine)
    dc = det_sub.add_parser("calibrate", help="fit the person score (the detector's logit and the pose network's "
                                              "confidence) on held-out photos")
    dc.add_argument("--checkpoint", required=True, help="a detector checkpoint (best.pt, or tune's output)")
    dc.add_argument("--pose", required=True, help="the pose model (stage 1 or cascade) it will run in front of")
    dc.add_argument("--out", required=True, help="the calibrated detector checkpoint to write")
    dc.add_argument("--root", help="folder holding lsp/, lspet/ and negatives/ (default: $DEEPPOSE_DATA)")
    dc.set_defaults(func=cmd_detector_calibrate)
    du = det_sub.add_parser("tune", help="choose the box rule's scale and the re-crops on the validation photos")
    du.add_argument("--checkpoint", required=True, help="a detector checkpoint")
    du.add_argument("--pose", required=True, help="the pose model (stage 1 or cascade) it will run in front of")
    du.add_argument("--out", required=True, help="the detector checkpoint to write, with the chosen rule")
    du.add_argument("--root", help="folder holding lsp/, lspet/ and negatives/ (default: $DEEPPOSE_DATA)")
    du.set_defaults(func=cmd_detector_tune)


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
    cmp.set_defaults(func=cmd_compare)


def _add_export_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose export`."""
    ex = sub.add_parser("export", help="export a model to ONNX (what predict runs), optionally int8; run it with "
                                       "--checkpoint OUT.onnx")
    ex.add_argument("--checkpoint", required=True, help="a stage-1, cascade or pipeline checkpoint")
    ex.add_argument("--out", required=True, help="the .onnx file to write (a .json and the localizer's beside it)")
    ex.add_argument("--int8", action="store_true", help="quantize statically (ONNX Runtime) on calibration images")
    ex.add_argument("--calibration", default="lsp:train", help="dataset:split of training images (never test)")
    ex.add_argument("--calibration-images", type=int, default=64, help="images to calibrate on (default 64)")
    ex.add_argument("--root", help="folder holding the datasets (default: $DEEPPOSE_DATA)")
    ex.add_argument("--model-version", help="the model's version written into the description (e.g. 2026.12.02; "
                                            "`deeppose --version` shows the default model's)")
    ex.set_defaults(func=cmd_export)


def _add_import_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose import-tflite`."""
    im = sub.add_parser("import-tflite", help="import a TFLite MobileNetV2 backbone (e.g. MoveNet's) as weights "
                                              "to train from (model.backbone_weights, with model.padding=tf_same)")
    im.add_argument("tflite", help="the .tflite file (e.g. ../shared/peers/movenet_single_pose_lightning_ptq.tflite)")
    im.add_argument("--out", required=True, help="the .pth to write (its provenance goes to OUT.json)")
    im.add_argument("--calibration", default="lsp:train",
                    help="dataset:split whose photos set BatchNorm's running statistics (default lsp:train)")
    im.add_argument("--calibration-images", type=int, default=64,
                    help="photos to measure them on (default 64; 0: mean 0, var 1)")
    im.add_argument("--size", type=int, default=192, help="side the calibration photos are resized to (default 192)")
    im.add_argument("--root", help="folder holding the datasets (default: $DEEPPOSE_DATA)")
    im.add_argument("--pose-model", type=int, metavar="SIZE",
                    help="instead: write a whole pose network checkpoint (.pt) at this input size (MoveNet's: 192): "
                         "the backbone, MoveNet's pyramid and keypoint branch, DSNT on LSP's 14 joints (model.init)")
    im.add_argument("--detector", type=int, metavar="SIZE",
                    help="instead: write a person detector checkpoint (.pt) at this input size (MoveNet's: 192): the "
                         "backbone, pyramid, person-centre and keypoint-regression branches (detector init)")
    im.set_defaults(func=cmd_import_tflite)


def _add_ship_command(sub: argparse._SubParsersAction) -> None:
    """`deeppose ship`."""
    ship = sub.add_parser("ship", help="inference-only copy of a checkpoint (fp16 weights, no optimizer state)")
    ship.add_argument("--checkpoint", required=True)
    ship.add_argument("--out", required=True)
    ship.add_argument("--fp32", action="store_true", help="keep float32 weights")
    ship.add_argument("--localizer", help="a person localizer checkpoint to put in front of the model (one file)")
    ship.set_defaults(func=cmd_ship)


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
    demo.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeppose", description="Human pose estimation by coordinate regression.")
    parser.add_argument("--version", action="version", version=f"deeppose {__version__}; {default_model_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data_command, _add_train_command, _add_eval_command, _add_predict_command,
                _add_serve_command, _add_localizer_command, _add_detector_command, _add_compare_command,
                _add_ship_command, _add_export_command, _add_import_command, _add_demo_command):
        add(sub)
    return parser
