"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

Every artifact of a run goes through :func:`atomic_write_bytes`: write a temporary file in the same
folder, flush and fsync it, rename it over the target (atomic on POSIX), then fsync the folder so
that the rename itself survives a power cut. A full disk or any other write error removes the
temporary file and raises :class:`AAEError` naming the target; the previous file stays whole.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import AAEError


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not allow opening folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Any], None], binary: bool = True) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then move it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise AAEError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get the usual mode
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise AAEError(f"cannot write {path}: {why}; the previous file, if any, is unchanged") \
                from None
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), binary=False)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def append_line(path: str | Path, line: str) -> None:
    """Append one line and fsync it (metrics.jsonl): a crash loses at most the line being written.
    A line cut by an earlier crash is closed first, so it never swallows the new one (readers skip
    lines that do not parse)."""
    path = Path(path)
    try:
        with open(path, "ab+") as f:
            cut = False
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                cut = f.read(1) != b"\n"
            f.write((("\n" if cut else "") + line.rstrip("\n") + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise AAEError(f"cannot write {path}: {why}") from None


def read_jsonl(path: str | Path, stop_at_bad: bool = True) -> list:
    """The records (JSON objects) of a JSON-lines file ([] if absent or unreadable). A line that
    is not one (cut by a crash, or edited) ends the log (``stop_at_bad``, for logs whose order
    matters) or is skipped."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            rec = None
        if isinstance(rec, dict):
            out.append(rec)
        elif stop_at_bad:
            break
    return out
