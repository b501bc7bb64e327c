"""The `deeppose` command line: `data check|synth`, `train`, `eval`, `predict`, `serve`, `localizer`, `compare`,
`export`, `ship`, `demo`.

Bad input, and a filesystem error met on the way, end with one line `deeppose: error: <file>: <problem>` on stderr
and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from deeppose.cli.parser import build_parser
from deeppose.errors import DeepPoseError

EXIT_BAD_INPUT = 2


def trains(args: argparse.Namespace) -> bool:
    """Whether a command trains (and so runs on every process under torchrun)."""
    return (args.command in ("train", "compare") and not getattr(args, "report_only", False)
            and not getattr(args, "retime", False)) or (args.command == "demo" and args.train) or \
        (args.command == "localizer" and args.localizer_command == "train") or \
        (args.command == "detector" and args.detector_command == "train")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # one of torchrun's processes
        return _main_distributed(args)
    return _run(args)


def _main_distributed(args: argparse.Namespace) -> int:
    """Under torchrun: a training command runs on every process in one process group (only rank 0 prints);
    any other command runs on rank 0 alone."""
    from deeppose.train import distributed

    rank = int(os.environ.get("RANK", "0"))
    if not trains(args):
        return _run(args) if rank == 0 else 0
    distributed.join()
    if rank == 0:
        code = _run(args)
    else:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            code = _run(args)
    # after a failure the group is left as it is: the other processes may be inside a collective, and torchrun
    # ends them all when one process fails
    if code == 0:
        distributed.leave()
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except DeepPoseError as err:
        print(f"deeppose: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # a filesystem error met mid-run (a full disk, a folder gone): one line, the file named
        where = f"{err.filename}: " if err.filename else ""
        print(f"deeppose: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT

