"""Room layouts: parsing and its errors, precedence, masks and person-to-zone features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thermal_action.data.rooms import (
    NO_LAYOUT,
    RoomLayout,
    Zone,
    layout_from_context_objects,
    layouts_by_image,
    parse_rooms,
    person_zone_features,
    read_rooms,
    resolve_layout,
    write_rooms,
    zone_masks,
)
from thermal_action.structures import MODEL_ZONE_KINDS, NUM_ZONE_FEATURES, ZONE_FEATURE_NAMES
from thermal_action.errors import RoomsError

BED = Zone.from_box("bed", (0.5, 0.25, 1.0, 0.75), "bed")  # x 30-60 px, y 10-30 px of 60x40


def test_a_box_zone_rasterizes_to_its_exact_pixel_coverage():
    masks = zone_masks(RoomLayout((Zone.from_box("bed", (0.5, 0.25, 0.75 + 1 / 120, 0.75)),), "api"), 40, 60)
    assert masks.shape == (len(MODEL_ZONE_KINDS), 40, 60) and masks.dtype == np.float32
    bed = masks[0]
    assert bed[10:30, 30:45].min() == 1.0 and bed.sum() == pytest.approx(20 * 15.5)
    assert bed[10:30, 45].max() == pytest.approx(0.5)  # half of the column's pixels' width
    assert masks[1:].sum() == 0  # no couch, no chair
    assert zone_masks(NO_LAYOUT, 40, 60).sum() == 0


def test_a_triangle_covers_half_of_its_bounding_box():
    tri = Zone("couch", ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))
    couch = zone_masks(RoomLayout((tri,), "api"), 40, 60)[1]
    assert couch.sum() / couch.size == pytest.approx(0.5, abs=0.01)


def test_person_features_share_on_bed_and_distance():
    lay = RoomLayout((BED,), "api")
    boxes = np.array([[30, 10, 40, 20],    # wholly on the bed
                      [20, 10, 40, 20],    # half on it
                      [0, 0, 10, 10]],     # far away
                     dtype=np.float32)
    f = person_zone_features(boxes, lay, 40, 60)
    assert f.shape == (3, NUM_ZONE_FEATURES)
    col = {n: i for i, n in enumerate(ZONE_FEATURE_NAMES)}
    assert f[:, col["has_layout"]].tolist() == [1, 1, 1]
    assert f[:, col["on_bed"]].tolist() == pytest.approx([1.0, 0.5, 0.0])
    # centre (5, 5) to the bed's corner (30, 10): sqrt(25^2 + 5^2) px over the 72.1 px diagonal
    assert f[2, col["near_bed"]] == pytest.approx(np.hypot(25, 5) / np.hypot(60, 40), rel=1e-5)
    assert f[0, col["near_bed"]] == 0.0
    assert f[:, col["on_couch"]].tolist() == [0, 0, 0] and f[:, col["near_couch"]].tolist() == [1, 1, 1]


def test_no_layout_features_say_so():
    f = person_zone_features(np.array([[0, 0, 5, 5]]), NO_LAYOUT, 40, 60)
    assert f[0, 0] == 0 and f[0, 1:4].sum() == 0 and f[0, 4:].tolist() == [1, 1, 1]
    assert person_zone_features(np.zeros((0, 4)), NO_LAYOUT, 40, 60).shape == (0, NUM_ZONE_FEATURES)


def test_context_objects_become_zones_and_win_over_the_rooms_file():
    ctx = [{"image_id": "A_1", "bbox": [0.75, 0.5, 0.5, 0.5], "category": "furniture", "subcategory": "bed"},
           {"image_id": "A_1", "bbox": [0.1, 0.1, 0.1, 0.1], "category": "object", "subcategory": "kettle"},
           {"image_id": "A_2", "bbox": [0.1, 0.1, 0.1, 0.1], "category": "object", "subcategory": "laptop"}]
    by_image = layouts_by_image(ctx)
    assert [z.kind for z in by_image["A_1"].zones] == ["bed"]
    assert by_image["A_1"].zones[0].bounds == pytest.approx((0.5, 0.25, 1.0, 0.75))
    assert by_image["A_2"].known and by_image["A_2"].zones == ()  # seen, no furniture
    rooms = parse_rooms({"sensors": {"A": {"zones": [{"kind": "couch", "box": [0, 0, 0.2, 0.2]}]}}}, "rooms.json")
    assert resolve_layout(by_image["A_1"], rooms, "A").zones[0].kind == "bed"
    assert resolve_layout(None, rooms, "A").zones[0].kind == "couch"
    assert resolve_layout(None, rooms, "B") is NO_LAYOUT
    assert layout_from_context_objects([{"bbox": [0.5, 0.5, 0.2, 0.2], "category": "furniture",
                                         "subcategory": "Sofa"}]).zones[0].kind == "couch"


def test_rooms_file_round_trip_valid_from_and_mac_lookup(tmp_path):
    data = {"sensors": {
        "02:00:1A:62:51:67": [
            {"valid_from": "2025-10-14T00:00:00Z", "zones": [{"kind": "chair", "box": [0.2, 0.6, 0.4, 0.85]}]},
            {"valid_from": 1760500000000, "zones": [{"kind": "bed", "name": "new bed",
                                                    "polygon": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.3]]}]}]}}
    path = tmp_path / "rooms.json"
    path.write_text(json.dumps(data))
    rooms = read_rooms(path)
    mac = "02:00:1a:62:51:67"
    assert rooms.layout_for("SL14_R1", mac, 1760400000000).zones[0].kind == "chair"
    moved = rooms.layout_for("SL14_R1", mac.upper(), 1760500000001)
    assert moved.zones[0].name == "new bed" and moved.source == "rooms file"
    assert rooms.layout_for("SL14_R1", None, 1760500000001) is NO_LAYOUT
    assert rooms.unused_keys(["SL14_R1"], [mac]) == [] and rooms.unused_keys(["X"]) == ["02:00:1A:62:51:67"]
    write_rooms(rooms, tmp_path / "again.json")
    assert read_rooms(tmp_path / "again.json").to_dict() == rooms.to_dict()


@pytest.mark.parametrize("zone, message", [
    ({"kind": "bath", "box": [0, 0, 0.5, 0.5]}, "unknown zone kind 'bath'"),
    ({"kind": "bed", "box": [1.2, 0.1, 1.5, 0.5]}, "wholly outside the frame"),
    ({"kind": "bed", "box": [0.5, 0.1, 0.2, 0.5]}, "x2 > x1"),
    ({"kind": "bed", "box": [0, 0, float("nan"), 0.5]}, "finite"),
    ({"kind": "bed", "polygon": [[0, 0], [1, 1]]}, "at least 3 points"),
    ({"kind": "bed"}, "either 'box'"),
])
def test_bad_zones_are_refused_naming_the_file_sensor_and_zone(tmp_path, zone, message):
    path = tmp_path / "rooms.json"
    path.write_text(json.dumps({"sensors": {"S1": {"zones": [{"kind": "chair", "box": [0, 0, 0.1, 0.1]}, zone]}}}))
    with pytest.raises(RoomsError) as e:
        read_rooms(path)
    assert str(path) in str(e.value) and "'S1'" in str(e.value) and "zone 1" in str(e.value)
    assert message in str(e.value)


def test_a_zone_partly_outside_is_clipped():
    rooms = parse_rooms({"sensors": {"S": {"zones": [{"kind": "bed", "box": [-0.2, 0.5, 0.3, 1.4]}]}}}, "x")
    assert rooms.layout_for("S").zones[0].bounds == (0.0, 0.5, 0.3, 1.0)


def test_load_annotations_gives_each_keyframe_its_room_and_names_a_bad_context_object(tmp_path):
    from thermal_action.data.annotations import load_annotations

    ann = {"images": [{"id": "S_1", "sensor_id": "S", "timestamp": 1, "frame_idx": 0, "width": 60, "height": 40},
                      {"id": "S_2", "sensor_id": "S", "timestamp": 2, "frame_idx": 1, "width": 60, "height": 40}],
           "annotations": [{"id": 0, "image_id": "S_1", "bbox": [0.5, 0.5, 0.2, 0.2], "category_id": 3}],
           "categories": [{"id": i, "name": f"c{i}"} for i in range(14)],
           "context_objects": [{"image_id": "S_1", "bbox": [0.75, 0.5, 0.5, 0.5], "category": "furniture",
                                "subcategory": "bed"}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(ann))
    kfs = load_annotations(path).keyframes
    assert [z.kind for z in kfs[0].layout.zones] == ["bed"] and kfs[1].layout is NO_LAYOUT
    ann["context_objects"].append({"image_id": "S_2", "bbox": [0.5, "x", 0.1, 0.1], "category": "furniture"})
    path.write_text(json.dumps(ann))
    with pytest.raises(Exception) as e:
        load_annotations(path)
    assert str(path) in str(e.value) and "context_objects[1]" in str(e.value)


def test_box_share_on_bed_or_couch_is_their_union_and_none_without_a_room():
    from thermal_action.data.rooms import BED_KINDS, box_share_on

    room = RoomLayout((Zone.from_box("bed", (0.0, 0.0, 0.5, 1.0)), Zone.from_box("couch", (0.25, 0.0, 0.75, 1.0)),
                       Zone.from_box("chair", (0.75, 0.0, 1.0, 1.0))), "rooms file")
    boxes = np.array([[0.0, 0.0, 60.0, 40.0], [0.0, 0.0, 30.0, 40.0], [45.0, 0.0, 60.0, 40.0]])
    np.testing.assert_allclose(box_share_on(boxes, room, BED_KINDS, 40, 60), [0.75, 1.0, 0.0])
    assert box_share_on(boxes, NO_LAYOUT, BED_KINDS, 40, 60) is None
    assert box_share_on(boxes, RoomLayout((), "api"), BED_KINDS, 40, 60).tolist() == [0.0, 0.0, 0.0]
