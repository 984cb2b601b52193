"""Progress: a tqdm bar on a terminal, one INFO line per finished item otherwise."""

from __future__ import annotations

import logging
import sys

from thermal_action.progress import Progress

log = logging.getLogger("thermal_action.test_progress")


def test_without_a_terminal_each_finished_item_is_one_info_line(caplog, capsys):
    with caplog.at_level(logging.INFO, logger=log.name), Progress(2, "predict", "recording", log) as p:
        assert not p.shows_bar  # pytest's stderr is not a terminal
        p.update(done="a.h5: 3 predictions")
        p.update(5)  # units without a named item: no line
        p.update(0, done="b.h5: 0 predictions", of=2)
    assert [r.getMessage() for r in caplog.records] == ["predict [1/2] a.h5: 3 predictions",
                                                        "predict [2/2] b.h5: 0 predictions"]
    assert capsys.readouterr().err == ""


def test_steps_are_announced_when_they_begin(caplog):
    with caplog.at_level(logging.INFO, logger=log.name), Progress(2, "export", "step", log) as p:
        p.begin("tracing")
        p.update()
        p.begin("checking")
    assert [r.getMessage() for r in caplog.records] == ["export [1/2] tracing", "export [2/2] checking"]


def test_on_a_terminal_a_bar_instead_of_lines(caplog, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with caplog.at_level(logging.INFO, logger=log.name), Progress(3, "evaluate", "keyframe", log) as p:
        assert p.shows_bar
        p.update(2, done="S1: 2 keyframes scored")
    assert "evaluate" in capsys.readouterr().err  # tqdm's bar on stderr
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
