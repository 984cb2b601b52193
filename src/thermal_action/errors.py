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


class ConfigError(ValueError):
    """A config file or override that does not fit the typed defaults (names the key and its source)."""


class RecordingNotFoundError(DatasetError, FileNotFoundError):
    """A recording path that does not exist, or a folder without ``.h5`` files (a
    :class:`DatasetError` that is also a ``FileNotFoundError``)."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model; names the file."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


class CheckpointDamagedError(ValueError):
    """``train --resume`` found a ``last.ckpt`` that cannot be read (the message says what to do)."""


class ExportError(RuntimeError):
    """An ONNX export that failed or does not reproduce PyTorch."""


class RoomsError(ValueError):
    """A room layout (``rooms.json``, an API request, annotations' furniture) that cannot be
    used; the message names the file or request, the sensor and the zone."""

# The service's and the labelling page's errors.


class FrameFormatError(ValueError):
    """A message that is not a frame (or frames) in one of the two formats; the text says why.

    Args:
        message: what is wrong, naming the record or frame.
        status: the HTTP status that answers it: 400 not JSON, 413 over a limit, 422 not frames.
    """

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class ReplayAuthError(ConnectionError):
    """The server refused the token; reconnecting cannot help."""


class DataDirInUse(OSError):
    """Another service holds the data directory's lock."""


class AlertIsOngoing(Exception):
    """Resolving an alert whose person is still down, without ``confirm_ongoing``."""


class StoreError(RuntimeError):
    """A database this code cannot use (newer than it, or a migration that failed); names the file."""


class RequestError(ValueError):
    """A request body the service cannot use; ``field`` names the culprit ("body" for the whole).

    Args:
        field: the JSON key at fault.
        message: what is wrong with it.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class SignatureError(ValueError):
    """A webhook request whose signature headers are missing, wrong or too old."""


class LabelError(ValueError):
    """An edit that cannot apply (unknown track, a merge whose tracks share a keyframe...)."""


def refuse_overwrite(existing: list[Path], what: str) -> None:
    """Raises :class:`FileExistsError` naming the ``existing`` files ``what`` would replace (a user's
    dataset, a hand-made split); nothing when the list is empty. The CLI's ``--force`` skips the check."""
    if existing:
        more = f" and {len(existing) - 6} more" if len(existing) > 6 else ""
        raise FileExistsError(f"{what} would replace existing files: {', '.join(str(p) for p in existing[:6])}"
                              f"{more}; pass --force to overwrite them, or choose another output directory")


__all__ = ["AlertIsOngoing", "CheckpointDamagedError", "CheckpointError", "ConfigError",
           "DataDirInUse", "DatasetError", "ExportError", "FrameFormatError", "LabelError",
           "RecordingNotFoundError", "ReplayAuthError", "RequestError", "RoomsError",
           "SignatureError", "StoreError", "refuse_overwrite"]
