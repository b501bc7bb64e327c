"""The `deeppose` command line: `deeppose data check|synth`, `deeppose demo`.

Bad input ends with one line `deeppose: error: <file>: <problem>` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import json
import sys
from pathlib import Path

from deeppose.errors import DeepPoseError

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


def _cmd_demo(args: argparse.Namespace) -> int:
    from deeppose.demo import run_demo

    if args.minutes is not None and args.minutes <= 0:
        raise DeepPoseError(None, f"--minutes must be positive, got {args.minutes}")
    if args.steps is not None and args.steps <= 0:
        raise DeepPoseError(None, f"--steps must be positive, got {args.steps}")
    minutes = args.minutes if args.minutes is not None else (math.inf if args.steps else 2.0)
    run_demo(args.out, minutes=minutes, seed=args.seed, max_steps=args.steps, progress=sys.stderr.isatty())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from deeppose.data.registry import LOADERS

    parser = argparse.ArgumentParser(prog="deeppose", description="Human pose estimation by coordinate regression.")
    sub = parser.add_subparsers(dest="command", required=True)

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

    demo = sub.add_parser("demo", help="synthetic data -> train a small regressor -> evaluate -> report folder")
    demo.add_argument("--out", default="reports/demo", help="report folder (default reports/demo)")
    demo.add_argument("--minutes", type=float, help="training wall-clock budget (default 2, none with --steps)")
    demo.add_argument("--steps", type=int, help="stop after this many steps (deterministic for a seed)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)
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
