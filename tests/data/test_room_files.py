"""rooms.json from annotations' furniture (``rooms extract``) and as text (``rooms show``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from thermal_action.data.room_files import extract_rooms, format_rooms, read_furniture, show_rooms
from thermal_action.data.rooms import read_rooms
from thermal_action.data.synth.config import SynthConfig
from thermal_action.data.synth.recording import simulate_recording
from thermal_action.data.synth.write import generate_dataset
from thermal_action.errors import DatasetError, RoomsError

CFG = SynthConfig(num_recordings=4, frames_per_recording=120, val_recordings=1, seed=11)
MAC = "02:00:00:00:00:0a"
T0 = 1_760_000_000_000


@pytest.fixture(scope="module")
def synth_ds(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("room_files") / "ds"
    generate_dataset(root, CFG)
    return root


def _file(tmp_path: Path, frames: list[list[tuple[str, list[float]]]], sensor: str = "S1", mac: str | None = MAC,
          step_ms: int = 1000) -> Path:
    """An annotation file: one image per entry of ``frames`` (its furniture: (name, cx, cy, w, h))."""
    images, ctx = [], []
    for i, furniture in enumerate(frames):
        image_id = f"{sensor}_{T0 + i * step_ms}"
        images.append({"id": image_id, "sensor_id": sensor, "timestamp": T0 + i * step_ms, "frame_idx": i,
                       "width": 60, "height": 40, **({"mac_address": mac} if mac else {})})
        ctx += [{"image_id": image_id, "bbox": bbox, "category": "furniture", "subcategory": name}
                for name, bbox in furniture]
    path = tmp_path / f"{sensor}.json"
    path.write_text(json.dumps({"images": images, "annotations": [], "context_objects": ctx}))
    return path


BED = ("bed", [0.7, 0.4, 0.4, 0.3])
CHAIR = ("chair", [0.2, 0.7, 0.1, 0.15])


def test_furniture_that_stays_within_the_tolerance_is_one_layout_its_median(tmp_path):
    jitter = [("bed", [0.7 + d, 0.4, 0.4, 0.3]) for d in (0.0, 0.01, -0.01, 0.02, 0.0)]
    summary = extract_rooms([_file(tmp_path, [[b, CHAIR] for b in jitter])], tmp_path / "rooms.json")
    rooms = read_rooms(tmp_path / "rooms.json")
    assert list(rooms.sensors) == [MAC] and summary.to_dict()["sensors"] == {MAC: 1}
    (layout,) = rooms.sensors[MAC].layouts
    assert layout.valid_from_ms is None  # the sensor's first layout holds from the start
    assert [z.kind for z in layout.zones] == ["bed", "chair"]
    np.testing.assert_allclose(layout.zones[0].bounds, [0.5, 0.25, 0.9, 0.55], atol=1e-6)  # the median bed


def test_moved_added_and_removed_furniture_starts_a_new_layout_at_its_time(tmp_path):
    moved = ("bed", [0.3, 0.4, 0.4, 0.3])
    frames = [[BED, CHAIR]] * 3 + [[moved, CHAIR]] * 3 + [[moved]] * 2 + [[moved, CHAIR, CHAIR]] * 2
    extract_rooms([_file(tmp_path, frames)], tmp_path / "rooms.json")
    layouts = read_rooms(tmp_path / "rooms.json").sensors[MAC].layouts
    assert [lay.valid_from_ms for lay in layouts] == [None, T0 + 3000, T0 + 6000, T0 + 8000]
    assert [sorted(z.kind for z in lay.zones) for lay in layouts] == [
        ["bed", "chair"], ["bed", "chair"], ["bed"], ["bed", "chair", "chair"]]
    timeline = read_rooms(tmp_path / "rooms.json").sensors[MAC]
    assert timeline.at(T0 + 4500).zones[0].bounds[0] == pytest.approx(0.1)  # the bed moved left


def test_a_single_keyframe_slip_is_ignored_and_reported(tmp_path):
    frames = [[BED, CHAIR]] * 3 + [[BED]] + [[BED, CHAIR]] * 3  # the annotator forgot the chair once
    summary = extract_rooms([_file(tmp_path, frames)], None)
    assert len(summary.rooms.sensors[MAC].layouts) == 1
    assert summary.ignored == [f"{tmp_path / 'S1.json'} [image S1_{T0 + 3000}]"]


def test_keys_are_macs_across_recordings_or_sensor_ids(tmp_path):
    a = _file(tmp_path, [[BED]] * 2, sensor="R1")
    b = _file(tmp_path, [[BED, CHAIR]] * 2, sensor="R2", mac=MAC.upper())
    b_json = json.loads(b.read_text())
    for im in b_json["images"]:
        im["timestamp"] += 10_000
    b.write_text(json.dumps(b_json))
    by_mac = extract_rooms([a, b]).rooms
    assert list(by_mac.sensors) == [MAC] and len(by_mac.sensors[MAC].layouts) == 2
    by_sensor = extract_rooms([a, b], key="sensor").rooms
    assert sorted(by_sensor.sensors) == ["R1", "R2"]
    no_mac = _file(tmp_path, [[BED]] * 2, sensor="R3", mac=None)
    assert list(extract_rooms([no_mac]).rooms.sensors) == ["R3"]  # auto: the sensor id when there is no MAC
    with pytest.raises(DatasetError, match="--key sensor"):
        extract_rooms([no_mac], key="mac")


def test_unknown_furniture_is_counted_and_no_furniture_is_an_error(tmp_path):
    summary = extract_rooms([_file(tmp_path, [[BED, ("wardrobe", [0.1, 0.1, 0.1, 0.1])]] * 2)])
    assert summary.unknown_furniture == {"wardrobe": 2}
    with pytest.raises(ValueError, match="no keyframe .* has furniture"):
        extract_rooms([_file(tmp_path, [[]] * 2, sensor="S9")])


def test_extract_from_converted_and_raw_files_gives_every_recordings_furniture(synth_ds, tmp_path):
    converted = extract_rooms([synth_ds / "annotations" / "train.json", synth_ds / "annotations" / "val.json"],
                              tmp_path / "a.json")
    raw = extract_rooms(sorted((synth_ds / "raw_annotations").glob("*.json")), tmp_path / "b.json")
    assert converted.rooms.to_dict() == raw.rooms.to_dict()
    rooms = read_rooms(tmp_path / "a.json")
    for i in range(CFG.num_recordings):
        rec = simulate_recording(CFG, i)
        if not rec.furniture_labelled:
            continue
        got = rooms.layout_for(rec.sensor_id, rec.mac_address, int(rec.timestamps[len(rec.timestamps) // 2]))
        assert [z.kind for z in got.zones] == [z.kind for z in rec.layout.zones]
        np.testing.assert_allclose([z.bounds for z in got.zones], [z.bounds for z in rec.layout.zones], atol=1e-4)
    assert len(read_furniture([synth_ds / "annotations" / "train.json"])) > 0


def test_show_prints_every_sensor_layout_and_zone_and_checks_the_file(tmp_path):
    frames = [[BED, CHAIR]] * 2 + [[("bed", [0.3, 0.4, 0.4, 0.3]), CHAIR]] * 2
    extract_rooms([_file(tmp_path, frames)], tmp_path / "rooms.json")
    text = show_rooms(tmp_path / "rooms.json")
    assert f"{MAC}: 2 layout(s)" in text and "from the start: 2 zone(s)" in text
    assert "from 2025-10-09 08:53:22 UTC (1760000002000)" in text
    assert "bed   : box x 0.500-0.900, y 0.250-0.550 (30.0-54.0 x 10.0-22.0 px)" in text
    assert format_rooms(read_rooms(tmp_path / "rooms.json")) == text
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sensors": {"S1": {"zones": [{"kind": "sofa", "box": [0, 0, 1, 1]}]}}}))
    with pytest.raises(RoomsError, match="bad.json: sensor 'S1', layout 0, zone 0: unknown zone kind 'sofa'"):
        show_rooms(bad)
