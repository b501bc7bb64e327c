"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class DeepPoseError(ValueError):
    """Bad input: a missing or malformed file, a wrong array layout, an empty split.

    The message always starts with the file (or folder) it concerns, so the CLI can print it as one line.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")
