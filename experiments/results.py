"""Resumable result files of the bench scripts: one JSON object per finished item."""

import json
from pathlib import Path


def finished(path: Path, key: str) -> set:
    """The ``key`` values of the items already recorded in ``path`` (none if it does not exist)."""
    if not path.exists():
        return set()
    return {json.loads(ln)[key] for ln in path.read_text().splitlines() if ln.strip()}


def record(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
