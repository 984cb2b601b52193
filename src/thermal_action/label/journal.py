"""Saving that survives a killed process: an append-only journal and atomic file writes.

Every edit is appended to ``journal.jsonl`` as one JSON line and ``fsync`` ed before the page
is told it is saved; the labels are the pre-annotation replayed with the journal. A process
killed in the middle of an append leaves at most a torn last line, which was never
acknowledged: :meth:`Journal.read` drops it (and says so) and truncates the file there.
Every other file (exports, caches) is written whole to a temporary file beside it, synced,
and moved over the old one (:func:`write_atomic`): a reader sees the old file or the new
one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from thermal_action.errors import DatasetError

logger = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Writes ``data`` to ``path`` through a synced temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with open(tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 1) -> None:
    write_atomic(path, json.dumps(obj, indent=indent))


class Journal:
    """``journal.jsonl``: one JSON object per line, appended and synced one at a time.

    Args:
        path: the journal file (created on the first append).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.dropped_torn_line = False

    def read(self) -> list[dict[str, Any]]:
        """Every record in order. A torn last line (a process killed mid-append) is dropped
        and cut from the file.

        Raises:
            DatasetError: a line before the last is not a JSON object (naming the file and line).
        """
        if not self.path.is_file():
            return []
        raw = self.path.read_bytes()
        records: list[dict[str, Any]] = []
        offset = 0
        lines = raw.split(b"\n")
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            if not line.strip():
                offset += len(line) + 1
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                if last:  # no newline after it: the append never finished
                    logger.warning("%s: dropped a torn last line (%d bytes; an edit cut off before it was "
                                   "acknowledged)", self.path, len(line))
                    with open(self.path, "r+b") as f:
                        f.truncate(offset)
                        f.flush()
                        os.fsync(f.fileno())
                    self.dropped_torn_line = True
                    break
                raise DatasetError(self.path, "not a JSON object", record=f"line {i + 1}") from None
            if last:  # parsed but unterminated: finish the line so the next append starts a new one
                with open(self.path, "ab") as f:
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())
            records.append(obj)
            offset += len(line) + 1
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Appends one record and syncs it to disk before returning."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"{self.path}: short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
