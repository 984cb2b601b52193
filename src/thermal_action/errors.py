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


def refuse_overwrite(existing: list[Path], what: str) -> None:
    """Raises :class:`FileExistsError` naming the ``existing`` files ``what`` would replace (a user's
    dataset, a hand-made split); nothing when the list is empty. The CLI's ``--force`` skips the check."""
    if existing:
        more = f" and {len(existing) - 6} more" if len(existing) > 6 else ""
        raise FileExistsError(f"{what} would replace existing files: {', '.join(str(p) for p in existing[:6])}"
                              f"{more}; pass --force to overwrite them, or choose another output directory")


__all__ = ["CheckpointDamagedError", "CheckpointError", "ConfigError", "DatasetError", "ExportError",
           "RecordingNotFoundError", "RoomsError", "refuse_overwrite"]
