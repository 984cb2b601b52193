"""The project's error classes live in one place, :mod:`thermal_action.errors`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "thermal_action"
ERROR_BASES = {"Exception", "ValueError", "RuntimeError", "OSError", "FileNotFoundError", "ConnectionError",
               "KeyError", "TypeError", "LookupError"}


def _exception_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if bases & ERROR_BASES or any(b.endswith("Error") for b in bases):
                found.append(node.name)
    return found


def test_every_error_class_is_defined_in_errors_py():
    elsewhere = {f"{p.relative_to(SRC).as_posix()}:{name}" for p in SRC.rglob("*.py") if p.name != "errors.py"
                 for name in _exception_classes(p)}
    assert elsewhere == set()
    from thermal_action import errors

    assert {"ConfigError", "DatasetError", "CheckpointError", "CheckpointDamagedError", "ExportError",
            "RecordingNotFoundError", "RoomsError", "FrameFormatError", "StoreError", "AlertIsOngoing",
            "RequestError", "SignatureError", "DataDirInUse", "ReplayAuthError", "LabelError"} <= set(errors.__all__)
