"""Pixel-level facts about the drawing module."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from thermal_action.visualize import (
    DROPPED_COLOR,
    HIGHLIGHT_COLOR,
    TRACK_PALETTE,
    SheetItem,
    auto_range,
    contact_sheet,
    draw_boxes,
    frame_to_rgb,
    short_name,
    thermal_lut,
    track_color,
)
from thermal_action.structures import DEFAULT_CLASS_NAMES


def _luminance(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float64)
    return 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]


def test_colour_map_gets_brighter_with_temperature():
    lut = thermal_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    lum = _luminance(lut)
    assert np.all(np.diff(lum) >= 0) and lum[-1] - lum[0] > 200
    # And so does a rendered temperature ramp.
    ramp = np.tile(np.linspace(15, 30, 60, dtype=np.float32), (40, 1))
    rgb = frame_to_rgb(ramp, vmin=15, vmax=30)
    assert np.all(np.diff(_luminance(rgb[0]), axis=0) >= 0)


def test_dropped_pixels_are_grey_and_unlike_any_temperature():
    lut = thermal_lut().astype(np.int64)
    assert np.abs(lut - np.array(DROPPED_COLOR)).sum(1).min() > 60
    frame = np.full((40, 60), 18.0, np.float32)
    frame.reshape(-1)[-576:] = -273.2
    frame[0, 0] = np.nan
    rgb = frame_to_rgb(frame, scale=2)
    assert (rgb[-1, -1] == DROPPED_COLOR).all() and (rgb[0, 0] == DROPPED_COLOR).all()
    assert (rgb[1, 1] == DROPPED_COLOR).all() and not (rgb[0, 2] == DROPPED_COLOR).all()
    # The dropped value does not widen the colour range.
    lo, hi = auto_range(frame)
    assert lo > 15 and hi > lo


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upscaled_shape_and_no_bleeding_from_holes(interpolation):
    frame = np.full((40, 60), 20.0, np.float32)
    frame[10, 10] = -273.2
    rgb = frame_to_rgb(frame, vmin=15, vmax=25, scale=5, interpolation=interpolation)
    assert rgb.shape == (200, 300, 3) and rgb.dtype == np.uint8
    hole = np.zeros((200, 300), bool)
    hole[50:55, 50:55] = True
    assert (rgb[hole] == DROPPED_COLOR).all()
    # Every other pixel has the colour of 20 °C: -273 °C did not leak into the neighbours.
    assert (rgb[~hole] == rgb[0, 0]).all()


def test_nearest_upscaling_makes_blocks_and_hot_is_bright():
    frame = np.full((40, 60), 18.0, np.float32)
    frame[3, 7] = 26.0
    rgb = frame_to_rgb(frame, vmin=16, vmax=28, scale=4)
    block = rgb[12:16, 28:32]
    assert (block == block[0, 0]).all()
    assert _luminance(block[0, 0]) > _luminance(rgb[0, 0]) + 50
    assert not (rgb[11, 28] == block[0, 0]).all() and not (rgb[12, 32] == block[0, 0]).all()
    smooth = frame_to_rgb(frame, vmin=16, vmax=28, scale=4, interpolation="bilinear")
    assert _luminance(smooth[13, 29]) > _luminance(smooth[12, 33]) > _luminance(smooth[0, 0])


def test_box_edges_land_on_the_right_upscaled_pixels():
    s = 4
    img = np.zeros((40 * s, 60 * s, 3), np.uint8)
    out = draw_boxes(img, [[3, 4, 13, 10]], colors=[(0, 255, 0)], scale=s)
    green = (out == (0, 255, 0)).all(-1)
    # x from 3 to 13 native pixels covers upscaled columns 12..51; rows 16..39.
    assert green[16, 12] and green[16, 51] and green[39, 12] and green[39, 51] and green[25, 12]
    assert not green[15, 12] and not green[16, 11] and not green[40, 30] and not green[25, 52]
    assert not green[25, 30]  # interior untouched
    assert (img == 0).all()  # the input is not modified


def test_highlight_is_red_and_thicker_and_tracks_keep_colours():
    s = 6
    img = np.zeros((40 * s, 60 * s, 3), np.uint8)
    out = draw_boxes(img, [[2, 2, 12, 10], [30, 20, 40, 30]], track_ids=[5, 7], scale=s, highlight=[True, False])
    red = (out == HIGHLIGHT_COLOR).all(-1)
    assert red[12:15, 40].all() and not red[15, 40]  # three pixels thick on the top edge
    c7 = track_color(7)
    assert (out[120, 180] == c7).all()
    again = draw_boxes(img, [[30, 20, 40, 30]], track_ids=[7], scale=s)
    assert (again[120, 180] == c7).all()
    assert HIGHLIGHT_COLOR not in TRACK_PALETTE
    assert track_color(0) != track_color(1)


def test_labels_are_drawn_above_the_box():
    s = 8
    img = np.zeros((40 * s, 60 * s, 3), np.uint8)
    out = draw_boxes(img, [[10, 10, 20, 18]], texts=["walking"], track_ids=[0], scale=s, font_size=12)
    above = out[80 - 20: 80, 80: 80 + 80]
    assert (above.max(-1) > 100).sum() > 20  # (antialiased) text pixels
    assert (above[..., 0] < 60).all()  # drawn in the cyan track colour (no red), on black
    plain = draw_boxes(img, [[10, 10, 20, 18]], track_ids=[0], scale=s)
    assert (plain[60:80, 80:160] == 0).all()
    with pytest.raises(ValueError, match="texts"):
        draw_boxes(img, [[10, 10, 20, 18]], texts=["a", "b"], scale=s)
    assert draw_boxes(img, np.zeros((0, 4)), scale=s).shape == img.shape  # zero boxes is fine


def test_contact_sheet_layout_and_file(tmp_path):
    rng = np.random.default_rng(0)
    frames = [18 + rng.normal(0, 0.3, (40, 60)).astype(np.float32) for _ in range(5)]
    items = [SheetItem(f, [[5, 5, 15, 12]], ["standing"], title=f"#{i}") for i, f in enumerate(frames[:4])]
    items.append((frames[4], [[1, 1, 9, 9]], ["sitting"]))  # a plain tuple works too
    path = tmp_path / "sub" / "sheet.png"
    sheet = contact_sheet(items, cols=3, path=path, scale=3, font_size=10, gap=4)
    title_h = 16
    assert sheet.shape == (2 * (120 + title_h) + 3 * 4, 3 * 180 + 4 * 4, 3)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), sheet)
    # The first tile's image starts below its title strip.
    tile = frame_to_rgb(frames[0], scale=3)
    assert np.array_equal(sheet[4 + title_h + 50, 4 + 100], tile[50, 100])


def test_short_names_cover_every_class():
    names = [short_name(c) for c in DEFAULT_CLASS_NAMES]
    assert len(set(names)) == 14 and max(map(len, names)) <= 10
    assert short_name("something new") == "something new"


def test_draw_zones_dashed_outline_in_the_kinds_colour_with_a_label():
    from thermal_action.data.rooms import Zone
    from thermal_action.visualize import ZONE_COLORS, draw_zones

    base = np.zeros((40 * 4, 60 * 4, 3), np.uint8)
    assert np.array_equal(draw_zones(base, [], 60, 40, scale=4), base)
    bed = Zone.from_box("bed", (0.5, 0.25, 1.0, 0.75), "by the window")
    img = draw_zones(base, [bed], 60, 40, scale=4)
    blue = np.all(img == ZONE_COLORS["bed"], axis=-1)
    top = blue[40, 120:240]  # the top edge, y 0.25 * 160
    assert 0.4 < top.mean() < 0.9  # dashed, not solid
    assert blue[:35].sum() == 0 and blue[125:].sum() == 0 and blue[:, :115].sum() == 0  # nowhere else
    label = img[42:60, 122:200].astype(int)  # the label "bed: by the window" inside the top-left corner
    assert (np.abs(label - ZONE_COLORS["bed"]).sum(-1) < 120).sum() > 20  # antialiased text in the bed's colour
    tri = Zone("couch", ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5)))
    green = np.all(draw_zones(base, [tri], 60, 40, scale=4) == ZONE_COLORS["couch"], axis=-1)
    assert green[80:, 130:].sum() == 0 and green[0, :100].sum() > 40  # a triangle in the top-left corner
