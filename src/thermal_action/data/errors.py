"""Dataset errors: :class:`~thermal_action.errors.DatasetError` lives in the core
(:mod:`thermal_action.errors`) so that evaluation and inference raise it without importing data."""

from thermal_action.errors import DatasetError

__all__ = ["DatasetError"]
