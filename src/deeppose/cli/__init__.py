"""The `deeppose` command line: `data check|synth`, `train`, `eval`, `predict`, `serve`, `localizer`, `compare`,
`export`, `ship`, `demo`.

Bad input, and a filesystem error met on the way, end with one line `deeppose: error: <file>: <problem>` on stderr
and exit code 2.
"""

from __future__ import annotations

import sys

from deeppose.cli.parser import build_parser
from deeppose.errors import DeepPoseError

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DeepPoseError as err:
        print(f"deeppose: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # a filesystem error met mid-run (a full disk, a folder gone): one line, the file named
        where = f"{err.filename}: " if err.filename else ""
        print(f"deeppose: error: {where}{err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT

