"""Drawing thermal frames: colour map, upscaling, boxes with labels, contact sheets.

The one drawing module of the project: dataset validation (contact sheets),
evaluation pictures and rendered videos all go through it, so a frame looks the
same everywhere. Frames are drawn with numpy and Pillow only (no matplotlib).

Conventions:

- A frame is ``(H, W)`` float temperatures in °C (the native 40 x 60 frame).
  Pixels below :data:`DROPPED_BELOW` (the -273.2 °C "no data" value of dropped
  packets) or NaN are drawn in :data:`DROPPED_COLOR`, a neutral grey that the
  colour map never produces, and are ignored when the colour range is chosen.
- Boxes are ``boxes_xyxy`` in native frame pixels (pixel ``i`` covers
  ``[i, i + 1)``); :func:`draw_boxes` multiplies them by the integer ``scale``
  the image was upscaled with, so the outline lies on the first and last
  upscaled pixel rows/columns inside the box.
- Every track id gets one colour (:func:`track_color`) wherever it is drawn;
  red is kept for the highlight (falls).
- Room zones (furniture, :mod:`thermal_action.data.rooms`) are drawn under the boxes with
  :func:`draw_zones`: dashed outlines in a colour per kind (:data:`ZONE_COLORS`), labelled
  by kind (and name) inside their top-left corner; person boxes are solid.

Example::

    rgb = frame_to_rgb(frame, scale=8)
    rgb = draw_boxes(rgb, boxes_xyxy, texts=["standing"], track_ids=[0], scale=8)
    contact_sheet([SheetItem(frame, boxes_xyxy, ["standing"])], cols=4, path="sheet.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Values below this (°C) are "no data" (dropped packets hold -273.2 °C).
DROPPED_BELOW = -200.0
#: Colour of dropped / NaN pixels: a neutral grey, far from every colour-map entry.
DROPPED_COLOR = (112, 112, 112)
#: Outline colour for highlighted boxes (falls); no track gets this colour.
HIGHLIGHT_COLOR = (255, 0, 0)
#: Track colours: bright, unlike the dark purple background and unlike red.
TRACK_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 255, 255),  # cyan
    (0, 255, 0),  # lime
    (255, 255, 255),  # white
    (30, 144, 255),  # dodger blue
    (255, 215, 0),  # gold
    (0, 255, 160),  # spring green
    (218, 112, 214),  # orchid
    (135, 206, 250),  # light sky blue
)

#: Outline colour of room zones per kind: muted, unlike the track colours, red and the
#: colour map's bright end, so furniture reads as background.
ZONE_COLORS: dict[str, tuple[int, int, int]] = {
    "bed": (100, 149, 237),  # cornflower blue
    "couch": (154, 205, 50),  # yellow-green
    "chair": (210, 180, 140),  # tan
    "table": (176, 196, 222),  # light steel blue
    "door": (188, 143, 143),  # rosy brown
    "other": (150, 150, 150),  # grey
}
#: Dash and gap of zone outlines, in image pixels.
_ZONE_DASH = (5, 3)

#: Short display names of the 14 default classes (labels must fit above 10 px boxes).
SHORT_CLASS_NAMES: dict[str, str] = {
    "sitting": "sit",
    "standing": "stand",
    "walking": "walk",
    "lying down-lying with risk": "FALL lying",
    "lying down-lying on the bed/couch": "bed lying",
    "leaning": "lean",
    "transition-normal transition": "trans",
    "transition-lying with risk transition": "FALLING",
    "transition-lying on the bed transition": "trans bed",
    "lower position-other": "low other",
    "lower position-kneeling": "kneel",
    "lower position-bending": "bend",
    "lower position-crouching": "crouch",
    "other": "other",
}


def short_name(class_name: str) -> str:
    """A short display name for a class (unknown names are returned unchanged)."""
    return SHORT_CLASS_NAMES.get(class_name, class_name)


# "Ironbow"-like control points (position in [0, 1], RGB). Luminance rises between
# every pair of points, and linear interpolation keeps it monotone, so brighter
# always means warmer (checked by the tests).
_IRONBOW_POINTS = (
    (0.00, (0, 0, 0)),
    (0.15, (32, 0, 96)),
    (0.35, (128, 0, 140)),
    (0.55, (210, 40, 60)),
    (0.75, (250, 140, 0)),
    (0.90, (255, 220, 50)),
    (1.00, (255, 255, 230)),
)


@lru_cache(maxsize=4)
def thermal_lut(n: int = 256) -> np.ndarray:
    """The thermal colour map as a lookup table.

    Args:
        n: number of entries.

    Returns:
        ``(n, 3)`` uint8, entry 0 coldest (black) to entry ``n - 1`` hottest (near white).
    """
    pos = np.array([p for p, _ in _IRONBOW_POINTS])
    rgb = np.array([c for _, c in _IRONBOW_POINTS], dtype=np.float64)
    x = np.linspace(0.0, 1.0, n)
    lut = np.stack([np.interp(x, pos, rgb[:, c]) for c in range(3)], axis=1)
    out = np.round(lut).astype(np.uint8)
    out.setflags(write=False)
    return out


def track_color(track_id: int) -> tuple[int, int, int]:
    """The colour of one person track, the same in every picture."""
    return TRACK_PALETTE[int(track_id) % len(TRACK_PALETTE)]


def dropped_mask(frame: np.ndarray) -> np.ndarray:
    """True where a frame holds no data (dropped packet or NaN)."""
    f = np.asarray(frame, dtype=np.float32)
    return ~np.isfinite(f) | (f < DROPPED_BELOW)


def auto_range(frame: np.ndarray, span_above_median: float = 10.0) -> tuple[float, float]:
    """A colour range for a frame (or a stack of frames) that ignores dropped pixels.

    From the 1st percentile of the valid pixels to ``span_above_median`` °C above their
    median: people (5-8 °C above the background) fill most of the colours, and hot
    objects (a 45 °C kettle) saturate to white instead of darkening everything else.

    Returns:
        ``(vmin, vmax)`` in °C; ``(0, 1)`` when no pixel is valid.
    """
    f = np.asarray(frame, dtype=np.float32)
    valid = f[~dropped_mask(f)]
    if valid.size == 0:
        return 0.0, 1.0
    vmin = float(np.percentile(valid, 1.0))
    vmax = max(float(np.median(valid)) + span_above_median, vmin + 1.0)
    return vmin, vmax


def _upscale_nearest(a: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)


def _upscale_bilinear(a: np.ndarray, scale: int) -> np.ndarray:
    """Bilinear resize by an integer factor with pixel-centre alignment (edges clamped)."""
    h, w = a.shape

    def coords(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = (np.arange(n_in * scale) + 0.5) / scale - 0.5
        c = np.clip(c, 0.0, n_in - 1.0)
        i0 = np.floor(c).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, c - i0

    y0, y1, fy = coords(h)
    x0, x1, fx = coords(w)
    top = a[y0][:, x0] * (1 - fx) + a[y0][:, x1] * fx
    bottom = a[y1][:, x0] * (1 - fx) + a[y1][:, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def frame_to_rgb(
    frame_celsius: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    scale: int = 1,
    interpolation: str = "nearest",
) -> np.ndarray:
    """Colours one thermal frame.

    Args:
        frame_celsius: ``(H, W)`` temperatures in °C; dropped pixels (< -200 °C) and
            NaN are drawn in :data:`DROPPED_COLOR`.
        vmin, vmax: °C mapped to the coldest / hottest colour; ``None`` picks
            :func:`auto_range` of this frame.
        scale: integer upscaling factor.
        interpolation: ``"nearest"`` (pixels stay visible as squares) or ``"bilinear"``.

    Returns:
        ``(H * scale, W * scale, 3)`` uint8 RGB image.
    """
    f = np.asarray(frame_celsius, dtype=np.float32)
    if f.ndim != 2:
        raise ValueError(f"expected an (H, W) frame, got shape {f.shape}")
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")
    bad = dropped_mask(f)
    auto_lo, auto_hi = auto_range(f) if (vmin is None or vmax is None) else (0.0, 1.0)
    lo = auto_lo if vmin is None else float(vmin)
    hi = auto_hi if vmax is None else float(vmax)
    if hi <= lo:
        hi = lo + 1e-3
    # Fill holes with the valid median before resizing so that -273 °C cannot bleed
    # into neighbouring pixels through bilinear weights.
    filled = np.where(bad, np.median(f[~bad]) if (~bad).any() else lo, f).astype(np.float64)
    if interpolation == "nearest":
        big = _upscale_nearest(filled, scale)
    else:
        big = _upscale_bilinear(filled, scale)
    lut = thermal_lut()
    idx = np.clip((big - lo) / (hi - lo) * (len(lut) - 1) + 0.5, 0, len(lut) - 1).astype(np.int64)
    rgb = lut[idx]  # (H*s, W*s, 3)
    big_bad = _upscale_nearest(bad, scale)
    rgb[big_bad] = DROPPED_COLOR
    return rgb


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _as_color(c: Sequence[int]) -> tuple[int, int, int]:
    return (int(c[0]), int(c[1]), int(c[2]))


def draw_boxes(
    image: np.ndarray,
    boxes_xyxy: np.ndarray | Sequence[Sequence[float]],
    texts: Sequence[str | None] | None = None,
    colors: Sequence[Sequence[int]] | None = None,
    track_ids: Sequence[int] | None = None,
    scale: int = 1,
    highlight: Sequence[bool] | None = None,
    line_width: int = 1,
    font_size: int = 10,
) -> np.ndarray:
    """Draws boxes and their labels on an RGB image.

    Args:
        image: ``(H * scale, W * scale, 3)`` uint8 image (e.g. from :func:`frame_to_rgb`).
        boxes_xyxy: ``(N, 4)`` boxes in native frame pixels (before upscaling).
        texts: one label per box (``None`` or ``""`` draws no label).
        colors: one RGB colour per box; default: :func:`track_color` of ``track_ids``,
            or of the box index when there are no track ids.
        track_ids: per-box track ids that pick the colours.
        scale: the factor the image was upscaled with.
        highlight: per-box flags; highlighted boxes (falls) get a red outline three
            times as thick and a red label background.
        line_width: outline width in image pixels.
        font_size: label font size in image pixels.

    Returns:
        A new ``(H * scale, W * scale, 3)`` uint8 image.
    """
    img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    for name, seq in (("texts", texts), ("colors", colors), ("track_ids", track_ids), ("highlight", highlight)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} boxes")
    if n == 0:
        return img.copy()
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = _font(int(font_size))
    height, width = img.shape[:2]
    scale = int(scale)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        hl = bool(highlight[i]) if highlight is not None else False
        if hl:
            color = HIGHLIGHT_COLOR
        elif colors is not None:
            color = _as_color(colors[i])
        else:
            color = track_color(track_ids[i] if track_ids is not None else i)
        lw = line_width * 3 if hl else line_width
        # Pixel i covers [i, i+1): the outline's outer edge is the first/last image
        # pixel inside the box.
        px1 = int(np.clip(np.floor(x1 * scale + 0.5), 0, width - 1))
        py1 = int(np.clip(np.floor(y1 * scale + 0.5), 0, height - 1))
        px2 = int(np.clip(np.floor(x2 * scale + 0.5) - 1, px1, width - 1))
        py2 = int(np.clip(np.floor(y2 * scale + 0.5) - 1, py1, height - 1))
        draw.rectangle([px1, py1, px2, py2], outline=color, width=lw)
        text = texts[i] if texts is not None else None
        if text:
            tb = draw.textbbox((0, 0), text, font=font)
            tw, th = tb[2] - tb[0], tb[3] - tb[1]
            # Above the box when there is room, otherwise just inside its top edge.
            ty = py1 - th - 3 if py1 - th - 3 >= 0 else py1 + lw
            tx = int(np.clip(px1, 0, max(0, width - tw - 2)))
            bg = HIGHLIGHT_COLOR if hl else (0, 0, 0)
            fg = (255, 255, 255) if hl else color
            draw.rectangle([tx, ty, tx + tw + 2, ty + th + 2], fill=bg)
            draw.text((tx + 1 - tb[0], ty + 1 - tb[1]), text, fill=fg, font=font)
    return np.asarray(pil).copy()


def _dashed(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], color: tuple[int, int, int],
            width: int) -> None:
    on, off = _ZONE_DASH
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        length = float(np.hypot(x2 - x1, y2 - y1))
        pos = 0.0
        while pos < length:
            end = min(pos + on, length)
            a, b = pos / max(length, 1e-9), end / max(length, 1e-9)
            draw.line([(x1 + (x2 - x1) * a, y1 + (y2 - y1) * a), (x1 + (x2 - x1) * b, y1 + (y2 - y1) * b)],
                      fill=color, width=width)
            pos += on + off


def draw_zones(image: np.ndarray, zones: Sequence, frame_width: int, frame_height: int, scale: int = 1,
               line_width: int = 1, font_size: int = 10) -> np.ndarray:
    """Draws room zones (dashed outlines, labelled by kind and name) on an RGB image.

    Args:
        image: ``(H * scale, W * scale, 3)`` uint8 image (e.g. from :func:`frame_to_rgb`).
        zones: :class:`~thermal_action.data.rooms.Zone` s (``kind``, ``name``, ``polygon`` of
            normalized ``(x, y)`` points).
        frame_width, frame_height: the frame the normalized coordinates refer to (pixels).
        scale: the factor the image was upscaled with.
        line_width: outline width in image pixels.
        font_size: label font size in image pixels (labels are drawn a little smaller).

    Returns:
        A new ``(H * scale, W * scale, 3)`` uint8 image.
    """
    img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    if not zones:
        return img.copy()
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    font = _font(max(8, int(font_size * 0.8)))
    height, width = img.shape[:2]
    sx, sy = frame_width * scale, frame_height * scale
    for zone in zones:
        color = ZONE_COLORS.get(zone.kind, ZONE_COLORS["other"])
        # Outline on the first / last image pixel inside the zone, as draw_boxes does.
        pts = [(float(np.clip(x * sx, 0, width - 1)), float(np.clip(y * sy, 0, height - 1))) for x, y in zone.polygon]
        _dashed(draw, pts, color, line_width)
        text = zone.kind if not zone.name or zone.name == zone.kind else f"{zone.kind}: {zone.name}"
        x1, y1 = min(p[0] for p in pts), min(p[1] for p in pts)
        tb = draw.textbbox((0, 0), text, font=font)
        tw, th = tb[2] - tb[0], tb[3] - tb[1]
        tx = int(np.clip(x1 + line_width + 1, 0, max(0, width - tw - 2)))
        ty = int(np.clip(y1 + line_width + 1, 0, max(0, height - th - 2)))
        draw.text((tx - tb[0], ty - tb[1]), text, fill=color, font=font)
    return np.asarray(pil).copy()


@dataclass
class SheetItem:
    """One tile of a contact sheet.

    Attributes:
        frame: ``(H, W)`` temperatures in °C.
        boxes_xyxy: ``(N, 4)`` boxes in native frame pixels.
        texts: one label per box.
        title: a line drawn above the tile (e.g. sensor and frame index).
        track_ids: per-box track ids (colours).
        highlight: per-box highlight flags (falls).
    """

    frame: np.ndarray
    boxes_xyxy: np.ndarray | Sequence[Sequence[float]] = field(default_factory=lambda: np.zeros((0, 4)))
    texts: Sequence[str | None] | None = None
    title: str = ""
    track_ids: Sequence[int] | None = None
    highlight: Sequence[bool] | None = None


def render_frame(
    frame: np.ndarray,
    boxes_xyxy: np.ndarray | Sequence[Sequence[float]] = (),
    texts: Sequence[str | None] | None = None,
    track_ids: Sequence[int] | None = None,
    highlight: Sequence[bool] | None = None,
    scale: int = 8,
    vmin: float | None = None,
    vmax: float | None = None,
    interpolation: str = "nearest",
    font_size: int = 10,
) -> np.ndarray:
    """:func:`frame_to_rgb` then :func:`draw_boxes`: one annotated picture of a frame.

    Returns:
        ``(H * scale, W * scale, 3)`` uint8 image.
    """
    rgb = frame_to_rgb(frame, vmin=vmin, vmax=vmax, scale=scale, interpolation=interpolation)
    return draw_boxes(rgb, boxes_xyxy, texts=texts, track_ids=track_ids, scale=scale, highlight=highlight,
                      font_size=font_size)


def _as_item(item: SheetItem | Sequence) -> SheetItem:
    if isinstance(item, SheetItem):
        return item
    parts = list(item)
    if not 1 <= len(parts) <= 4:
        raise ValueError("a contact-sheet item is (frame[, boxes_xyxy[, texts[, title]]]) or a SheetItem")
    frame = parts[0]
    boxes = parts[1] if len(parts) > 1 and parts[1] is not None else np.zeros((0, 4))
    texts = parts[2] if len(parts) > 2 else None
    title = parts[3] if len(parts) > 3 else ""
    return SheetItem(frame=frame, boxes_xyxy=boxes, texts=texts, title=title)


def contact_sheet(
    items: Sequence[SheetItem | Sequence],
    cols: int = 4,
    path: str | Path | None = None,
    scale: int = 6,
    vmin: float | None = None,
    vmax: float | None = None,
    interpolation: str = "nearest",
    font_size: int = 10,
    gap: int = 4,
) -> np.ndarray:
    """Tiles annotated frames into one picture.

    Args:
        items: :class:`SheetItem` or tuples ``(frame, boxes_xyxy, texts[, title])``.
        cols: tiles per row.
        path: where to write the PNG (parent directories are created); ``None`` writes nothing.
        scale: upscaling of every frame.
        vmin, vmax: shared colour range in °C; ``None`` picks each tile's own range.
        interpolation: ``"nearest"`` or ``"bilinear"``.
        font_size: label and title font size.
        gap: pixels of dark grey between tiles.

    Returns:
        The sheet as ``(rows * tile_h + gaps, cols * tile_w + gaps, 3)`` uint8, where a
        tile is the upscaled frame plus a title strip when any item has a title.
    """
    tiles = [_as_item(it) for it in items]
    if not tiles:
        raise ValueError("contact_sheet needs at least one item")
    cols = max(1, min(int(cols), len(tiles)))
    rows = (len(tiles) + cols - 1) // cols
    h, w = np.asarray(tiles[0].frame).shape
    title_h = font_size + 6 if any(t.title for t in tiles) else 0
    tile_h, tile_w = h * scale + title_h, w * scale
    sheet = np.full((rows * tile_h + (rows + 1) * gap, cols * tile_w + (cols + 1) * gap, 3), 40, np.uint8)
    font = _font(int(font_size))
    for k, t in enumerate(tiles):
        if np.asarray(t.frame).shape != (h, w):
            raise ValueError(f"item {k}: frame shape {np.asarray(t.frame).shape} differs from {(h, w)}")
        img = render_frame(t.frame, t.boxes_xyxy, texts=t.texts, track_ids=t.track_ids, highlight=t.highlight,
                           scale=scale, vmin=vmin, vmax=vmax, interpolation=interpolation, font_size=font_size)
        r, c = divmod(k, cols)
        y0 = gap + r * (tile_h + gap)
        x0 = gap + c * (tile_w + gap)
        sheet[y0 + title_h: y0 + tile_h, x0: x0 + tile_w] = img
    if title_h:
        pil = Image.fromarray(sheet)
        draw = ImageDraw.Draw(pil)
        for k, t in enumerate(tiles):
            if t.title:
                r, c = divmod(k, cols)
                draw.text((gap + c * (tile_w + gap) + 2, gap + r * (tile_h + gap) + 2), t.title,
                          fill=(230, 230, 230), font=font)
        sheet = np.asarray(pil).copy()
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(p)
    return sheet
