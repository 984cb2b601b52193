"""The experiment configs that ship inside the package (``thermal_action/configs/*.yaml``).

``--config cpu_default`` names one of them; a wheel install has them without a checkout.
They are read with :mod:`importlib.resources`, so they work wherever the package is
installed. This module imports nothing heavy: the CLI lists the names for ``--help``.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

#: The config ``train``, ``pretrain`` and ``demo`` use without ``--config``.
DEFAULT = "cpu_default"
SUFFIX = ".yaml"


def names() -> list[str]:
    """The shipped configs' names (file names without ``.yaml``), sorted."""
    return sorted(f.name[: -len(SUFFIX)] for f in resources.files(__name__).iterdir() if f.name.endswith(SUFFIX))


def find(name: str) -> Traversable | None:
    """The shipped config ``name`` (with or without ``.yaml``); None when there is none."""
    name = name.removesuffix(SUFFIX)
    if "/" in name or "\\" in name or name not in names():
        return None
    return resources.files(__name__) / (name + SUFFIX)
