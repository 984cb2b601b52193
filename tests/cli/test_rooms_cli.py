"""CLI: ``rooms extract`` / ``rooms show`` and ``synth --day``, as a user types them."""

from __future__ import annotations

import json

from thermal_action.cli import main


def test_synth_day_then_rooms_extract_and_show(tmp_path, capsys):
    day = tmp_path / "day"
    assert main(["synth", str(day), "--day", "0.02", "--start-hour", "12", "--keyframe-seconds", "5"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 432 and summary["falls"] == 0 and summary["keyframes"] >= 14
    assert (day / "frames" / "DAY00.h5").is_file() and (day / "rooms.json").is_file()

    out = tmp_path / "rooms.json"
    assert main(["rooms", "extract", str(day / "annotations" / "day.json"), "--out", str(out)]) == 0
    extracted = json.loads(capsys.readouterr().out)
    assert extracted["sensors"] == {summary["mac_address"]: 1} and extracted["out"] == str(out)
    assert main(["rooms", "show", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{summary['mac_address']}: 1 layout(s)" in text and "bed" in text and "couch" in text
    assert main(["rooms", "show", str(out), "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["sensors"]) == [summary["mac_address"]]


def test_rooms_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "rooms.json"
    bad.write_text('{"sensors": {"S1": {"zones": [{"kind": "bed", "box": [0.5, 0.5, 0.4, 0.9]}]}}}')
    assert main(["rooms", "show", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"thermal-action rooms: error: {bad}: sensor 'S1', layout 0, zone 0: 'box' needs x2 > x1 and "
                   "y2 > y1, got [0.5, 0.5, 0.4, 0.9]")
    empty = tmp_path / "a.json"
    empty.write_text(json.dumps({"images": [{"id": "x", "sensor_id": "S1", "timestamp": 1}], "annotations": []}))
    assert main(["rooms", "extract", str(empty), "--out", str(tmp_path / "r.json")]) == 2
    assert "has furniture boxes" in capsys.readouterr().err
