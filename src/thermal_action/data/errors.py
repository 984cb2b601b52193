"""Errors for bad dataset input. Every message names the file and, where there is one, the record."""

from __future__ import annotations


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
        where = self.path if record is None else f"{self.path} [{record}]"
        super().__init__(f"{where}: {message}")
