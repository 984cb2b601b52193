"""Signs of life for commands that run for minutes (``evaluate``, ``predict``, ``export``).

On a terminal: a tqdm bar on stderr. Anywhere else (a log file, a pipe, a job scheduler):
no bar, whose redraws would fill the log, but one INFO line per finished item (a recording,
an export stage), numbered ``[i/n]``, so the log says how far the command got::

    with Progress(len(paths), "predict", "recording", logger) as progress:
        for path in paths:
            ...
            progress.update(done=f"{path}: {n} predictions")

A core module: it imports no layer, so every layer may use it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class Progress:
    """A tqdm bar on a terminal, else INFO lines (module docstring).

    Args:
        total: units of work (recordings, keyframes, stages).
        desc: what runs (the bar's label and each line's prefix).
        unit: the unit's name (singular).
        logger: where the lines go without a bar.
        bar: force the bar on or off; None: on when stderr is a terminal.
    """

    def __init__(self, total: int, desc: str, unit: str, logger: logging.Logger, bar: bool | None = None):
        self.total, self.desc, self.unit, self.logger = int(total), desc, unit, logger
        self.n = 0  # units done
        self.items = 0  # finished items named with ``done``
        self._bar: Any = None
        if sys.stderr.isatty() if bar is None else bar:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=f" {unit}", file=sys.stderr, leave=False,
                             dynamic_ncols=True)

    @property
    def shows_bar(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1, done: str | None = None, of: int | None = None) -> None:
        """``n`` more units are done; ``done`` names a finished item: an INFO line ``[i/of]``
        without a bar (``of``: the items in all, default ``total``), the bar's postfix with one."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            if done:  # the item's name (before its ": ..."), short: the bar keeps its width
                self._bar.set_postfix_str(done.split(": ", 1)[0][-30:], refresh=True)
        if done:
            self.items += 1
            count = f"[{self.items}/{self.total if of is None else of}]"
            if self._bar is None:
                self.logger.info("%s %s %s", self.desc, count, done)
            else:
                self.logger.debug("%s %s %s", self.desc, count, done)

    def begin(self, what: str) -> None:
        """Names the step starting now (for a few long steps rather than many short items):
        an INFO line ``[i/total]`` without a bar, the bar's postfix with one."""
        if self._bar is not None:
            self._bar.set_postfix_str(what[-30:], refresh=True)
            self.logger.debug("%s: %s", self.desc, what)
        else:
            self.logger.info("%s [%d/%d] %s", self.desc, self.n + 1, self.total, what)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
