"""Writing files so that a crash never leaves a half-written one: write beside, then rename over.

Every file deeppose writes (checkpoints, JSON, pictures, arrays) goes through `atomic_write`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deeppose.errors import DeepPoseError


def atomic_write(path: str | Path, write: Callable[[Path], Any], durable: bool = False) -> Path:
    """Call `write(tmp)` on a temporary path beside `path` (same folder, same suffix), then rename it over `path`.

    The parent folder is created; on an error the temporary file is removed and `path` is left as it was. A
    process killed mid-write (kill -9) leaves `path` whole too: only the temporary file is torn, and the next
    write replaces it. `durable`: the file's bytes, then the rename, are flushed to disk (fsync) before
    returning, so a power cut cannot leave `path` empty (checkpoints).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    def dump(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)

    return atomic_write(path, dump)


def copy_file(src: str | Path, dst: str | Path, durable: bool = False) -> Path:
    """Copy a file atomically (e.g. last.pt -> best.pt); `durable`: see `atomic_write`."""
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp), durable)


def writable_folder(path: str | Path, what: str = "--out") -> Path:
    """Show, before any long work, that the output folder `path` can be made and written: its missing folders are
    made, a probe file written and removed in it, then the folders it made removed again (a run that fails later
    leaves nothing behind; the writers make them as they need). DeepPoseError naming it, in one line, when it is a
    file, cannot be created or cannot be written (a read-only filesystem, permissions)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DeepPoseError(path, f"{what} is a file; give a folder")
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".deeppose-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DeepPoseError(path, f"{what} cannot be written ({exc.strerror or exc})") from None
    finally:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                pass
    return path
