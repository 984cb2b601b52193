"""The project's errors, in the core so every layer can raise and catch them.

Every message names the file and, where there is one, the record.
"""

from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A dataset file or record that cannot be used as it is.

    Args:
        path: the file the problem is in.
        message: what is wrong.
        record: which record (image id, annotation id, line number...), if any.
    """

    def __init__(self, path: object, message: str, record: object | None = None):
        self.path = str(path)
        self.record = record
        self.message = message
        where = self.path if record is None else f"{self.path} [{record}]"
        super().__init__(f"{where}: {message}")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model; names the file."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


class RoomsError(ValueError):
    """A room layout (``rooms.json``, an API request, annotations' furniture) that cannot be
    used; the message names the file or request, the sensor and the zone."""


__all__ = ["CheckpointError", "DatasetError", "RoomsError"]
