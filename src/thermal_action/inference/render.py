"""Render a recording with its predictions as an MP4 (and a GIF) to watch in a browser.

Every frame goes through :mod:`thermal_action.visualize` (the thermal colour map,
upscaling, boxes coloured by track id, the red highlight for falls), the same drawing
as the validation contact sheets and evaluation pictures::

    frame (40, 60) °C ─► frame_to_rgb (one colour range for the whole recording,
                         so colours do not flicker) ─► draw_zones: the room's furniture
                         (dashed, a colour per kind) ─► draw_boxes: annotations (grey,
                         "gt ..."), predictions ("<track> <action> <score>"), tracks
                         inside a fall alert in red ─► caption strip (sensor, frame,
                         time, alert) ─► even size ─► ffmpeg libx264 yuv420p ─► .mp4
                                                                     └► Pillow ─► .gif

Predictions exist every ``step`` frames and annotations at keyframes 1-13 frames
apart; a box is shown from its keyframe until the next keyframe, at most
``max_hold`` frames (13, the largest keyframe gap of the real data).

The room of a frame is resolved as everywhere (:func:`~thermal_action.data.rooms.resolve_layout`):
the furniture of the annotations' latest keyframe at or before it (the first keyframe's
before that), else the layout file's (``rooms``) for the recording's sensor id or MAC
address at the frame's time, else none.

The MP4 is H.264 in yuv420p with even width and height (what browsers decode) and
``+faststart``, written by the ffmpeg that ``imageio-ffmpeg`` bundles. Pillow drops
a GIF frame identical to the one before (it extends the previous frame's duration).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from thermal_action.alert_rule import AlertOverrides, AlertRule, resolve_alert_rule
from thermal_action.data.hdf5 import Recording, read_recording
from thermal_action.data.rooms import NO_LAYOUT, RoomLayout, RoomMap, read_rooms, resolve_layout
from thermal_action.inference.alerts import AlertEvent, fall_class_index, find_fall_alerts
from thermal_action.inference.outputs import Prediction, read_predictions_file
from thermal_action.structures import PREDICTION, boxes_cxcywh_norm_to_xyxy
from thermal_action.visualize import auto_range, draw_boxes, draw_zones, frame_to_rgb, short_name

logger = logging.getLogger(__name__)

#: Annotation boxes are drawn in this colour (predictions use the track colours).
GT_COLOR = (190, 190, 190)
CAPTION_BG = (24, 24, 24)
CAPTION_FG = (230, 230, 230)
ALERT_FG = (255, 60, 60)


def ffmpeg_exe() -> str:
    """The ffmpeg bundled with ``imageio-ffmpeg`` (a clear error when it is missing)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:  # the 'video' extra
        raise ModuleNotFoundError("rendering MP4 needs imageio-ffmpeg: pip install 'thermal-action[video]'",
                                  name="imageio_ffmpeg") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class VideoInfo:
    """What ffmpeg says about a video file.

    Attributes:
        codec: e.g. ``"h264"``.
        pix_fmt: e.g. ``"yuv420p"``.
        width, height: pixels.
        frames: decoded frame count.
    """

    codec: str
    pix_fmt: str
    width: int
    height: int
    frames: int


def probe_video(path: str | Path) -> VideoInfo:
    """Decodes a video with the bundled ffmpeg and parses its stream line and frame count."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
                          capture_output=True, text=True, check=False)
    text = proc.stderr
    m = re.search(r"Stream #\d+:\d+[^:]*: Video: (\w+)[^,]*, (\w+)(?:\([^)]*\))?, (\d+)x(\d+)", text)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"ffmpeg cannot read {path}: {text.strip()[-500:]}")
    frames = re.findall(r"frame=\s*(\d+)", text)
    return VideoInfo(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(frames[-1]) if frames else 0)


def check_writable(path: str | Path, what: str = "the output") -> Path:
    """Makes sure ``path`` can be written (its folder created) before minutes of work go into it.

    Raises:
        OSError: one line naming ``path`` and why it cannot be written (a folder there, a
            file where its folder should be, no permission, a read-only file system).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {what} {path}: it is a folder; name a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {what} {path}: {parent} is a file, not a folder")
            break
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as e:
        raise type(e)(f"cannot write {what} {path}: {e.strerror or e}") from e
    if not existed:
        path.unlink()
    return path


class Mp4Writer:
    """Pipes RGB frames into ffmpeg: H.264, yuv420p, even size, ``+faststart``.

    ffmpeg's messages go to a temporary file, not a pipe: a pipe nobody reads while frames
    are written fills up when ffmpeg logs a lot, and then ffmpeg waits on it while we wait
    on ffmpeg. (``imageio_ffmpeg.write_frames`` avoids that by leaving ffmpeg's stderr on
    ours, but then a failure cannot quote ffmpeg and its exit status is never checked.)

    Args:
        path: the ``.mp4`` to write.
        width: frame width (must be even; :func:`even_size` pads).
        height: frame height (must be even).
        fps: frames per second.
        crf: x264 quality (lower is better; 18 is visually lossless).
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, crf: int = 18):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even frame sizes, got {width}x{height}")
        self.path = check_writable(path, "the video")
        self.size = (width, height)
        cmd = [
            ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(self.path),
        ]
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._log)
        self.frames = 0

    def _stop(self, kill: bool) -> str:
        """Ends ffmpeg (``kill``: at once; else after the last frame) and returns what it said."""
        if kill:
            self._proc.kill()
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:  # ffmpeg is gone: its exit status and words say why
            pass
        self._proc.wait()
        self._log.seek(0)
        said = self._log.read().decode(errors="replace")
        self._log.close()
        return said

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.size[1], self.size[0], 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected a ({self.size[1]}, {self.size[0]}, 3) uint8 frame, got {rgb.shape} {rgb.dtype}")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(rgb).tobytes())
        except BrokenPipeError as e:
            # ffmpeg exited (it could not open or encode the output): its own words say why.
            err = self._stop(kill=True)
            tail = " ".join(err.split())[-500:] or f"exit status {self._proc.returncode}"
            raise OSError(f"ffmpeg stopped writing {self.path} after {self.frames} frame(s): {tail}") from e
        self.frames += 1

    def close(self) -> None:
        err = self._stop(kill=False)
        if self._proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed writing {self.path}: {err.strip()[-500:]}")

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, *_: Any) -> None:
        if exc_type is None:
            self.close()
        elif not self._log.closed:
            self._stop(kill=True)


def even_size(rgb: np.ndarray) -> np.ndarray:
    """Pads an image by one dark row / column where its height / width is odd."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=0)


@dataclass
class _Shown:
    """Boxes at keyframes, looked up for any frame with hold-until-next-keyframe."""

    keyframes: list[int]
    items: dict[int, list[Any]]
    max_hold: int

    @classmethod
    def of(cls, items: dict[int, list[Any]], max_hold: int) -> "_Shown":
        return cls(sorted(items), items, max_hold)

    def at(self, frame_idx: int) -> list[Any]:
        i = bisect.bisect_right(self.keyframes, frame_idx) - 1
        if i < 0:
            return []
        k = self.keyframes[i]
        nxt = self.keyframes[i + 1] if i + 1 < len(self.keyframes) else None
        if frame_idx - k >= self.max_hold or (nxt is not None and frame_idx >= nxt):
            return []
        return self.items[k]


@dataclass
class RenderResult:
    """What :func:`render_recording` wrote.

    Attributes:
        mp4: the video; gif: the GIF or None.
        frames: frames rendered.
        width, height: video size in pixels.
        alerts: the fall alerts drawn.
    """

    mp4: Path
    gif: Path | None
    frames: int
    width: int
    height: int
    alerts: list[AlertEvent] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"mp4": str(self.mp4), "gif": str(self.gif) if self.gif else None, "frames": self.frames,
                "size": [self.width, self.height], "fall_alerts": len(self.alerts)}


def _caption(width: int, height: int, text: str, alert: str, font_size: int) -> np.ndarray:
    img = Image.new("RGB", (width, height), CAPTION_BG)
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    draw.text((4, 2), text, fill=CAPTION_FG, font=font)
    if alert:
        tw = draw.textlength(alert, font=font)
        draw.text((width - tw - 4, 2), alert, fill=ALERT_FG, font=font)
    return np.asarray(img)


def _time_text(ts_ms: int) -> str:
    t = dt.datetime.fromtimestamp(ts_ms / 1000.0, tz=dt.timezone.utc)
    return t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


class FrameRenderer:
    """Draws one frame of a recording with its boxes, labels, alerts and caption.

    Args:
        rec: the recording.
        predictions: predicted boxes per keyframe with the hold rule.
        annotations: annotated boxes per keyframe with the hold rule.
        alerts: fall alerts; a track's box is highlighted from its alert's start to
            end frame.
        scale: integer upscaling.
        font_size: label size (pixels).
        range_frames: frames the colour range is taken from (one range for the
            whole video, so colours do not flicker).
        layout_at: the room's furniture of a frame (drawn under the boxes); None draws none.
    """

    def __init__(self, rec: Recording, predictions: "_Shown", annotations: "_Shown", alerts: Sequence[AlertEvent],
                 scale: int, font_size: int, range_frames: np.ndarray,
                 layout_at: Callable[[int], RoomLayout] | None = None):
        self.rec = rec
        self.layout_at = layout_at
        self.predictions = predictions
        self.annotations = annotations
        self.alerts = list(alerts)
        self.scale = scale
        self.font_size = font_size
        self.vmin, self.vmax = auto_range(range_frames[:: max(1, len(range_frames) // 64)])
        self.caption_h = font_size + 6
        h, w = rec.height * scale + self.caption_h, rec.width * scale
        self.width, self.height = w + w % 2, h + h % 2

    def in_alert(self, track_id: int, frame_idx: int) -> bool:
        return any(a.track_id == track_id and a.start_frame <= frame_idx <= a.end_frame for a in self.alerts)

    def render(self, f: int) -> np.ndarray:
        """``(height, width, 3)`` uint8 picture of frame ``f`` (even size)."""
        rec, scale, fs = self.rec, self.scale, self.font_size
        rgb = frame_to_rgb(rec.frames[f], vmin=self.vmin, vmax=self.vmax, scale=scale)
        if self.layout_at is not None:
            rgb = draw_zones(rgb, self.layout_at(f).zones, rec.width, rec.height, scale=scale, font_size=fs)
        g = self.annotations.at(f)
        if g:
            rgb = draw_boxes(rgb, [b for b, _ in g], texts=[t for _, t in g], colors=[GT_COLOR] * len(g),
                             scale=scale, font_size=fs)
        ps = self.predictions.at(f)
        falling = []
        if ps:
            hl = [self.in_alert(p.track_id, f) for p in ps]
            texts = [("FALL " if h else "") + (f"#{p.track_id} " if p.track_id >= 0 else "")
                     + f"{short_name(p.top_class)} {p.top_score:.2f}" for p, h in zip(ps, hl)]
            rgb = draw_boxes(rgb, [p.box_xyxy for p in ps], texts=texts, track_ids=[max(p.track_id, 0) for p in ps],
                             scale=scale, highlight=hl, font_size=fs)
            falling = [p.track_id for p, h in zip(ps, hl) if h]
        alert = ("FALL ALERT " + ",".join(f"#{t}" for t in falling)) if falling else ""
        caption = _caption(rgb.shape[1], self.caption_h,
                           f"{rec.sensor_id}  frame {f}  {_time_text(int(rec.timestamps[f]))} UTC", alert, fs)
        return even_size(np.concatenate([rgb, caption], axis=0))


def _run_rule(run_json: Path) -> AlertRule | None:
    """The alert rule ``predict`` wrote into its ``run.json`` (None: no such file or rule)."""
    if not run_json.is_file():
        return None
    meta = json.loads(run_json.read_text())
    if meta.get("alert_rule") is not None:
        return AlertRule.from_dict(meta["alert_rule"])
    old = meta.get("fall_alert_rule")  # a predict from before alert rules: no cooldown then
    if not old:
        return None
    given = {"fall_class": old.get("class"), "threshold": old.get("threshold"), "min_seconds": old.get("min_seconds")}
    return AlertRule(cooldown_seconds=0.0, **{k: v for k, v in given.items() if v is not None})


def _layout_lookup(rec: Recording, own: dict[int, RoomLayout], rooms: RoomMap | None) -> Callable[[int], RoomLayout]:
    """Frame index -> its room: the latest annotated keyframe's furniture (the first's before
    it), else the layout file's at the frame's time, else :data:`NO_LAYOUT`."""
    keys = sorted(own)
    mac = rec.attrs.get("mac_address")
    mac = str(mac) if mac else None

    def at(f: int) -> RoomLayout:
        layout = NO_LAYOUT
        if keys:
            i = bisect.bisect_right(keys, f) - 1
            layout = own[keys[max(i, 0)]]
        return resolve_layout(layout, rooms, rec.sensor_id, mac, int(rec.timestamps[f]))

    return at


def render_recording(
    recording: str | Path | Recording,
    out_mp4: str | Path,
    gif: str | Path | None = None,
    predictions: str | Path | Sequence[Prediction] | None = None,
    annotations: str | Path | Any | None = None,
    scale: int = 8,
    fps: float = PREDICTION.fps,
    alert_rule: AlertRule | AlertOverrides | None = None,
    max_hold: int = 13,
    start: int = 0,
    stop: int | None = None,
    gif_scale: int | None = None,
    font_size: int | None = None,
    rooms: str | Path | RoomMap | None = None,
) -> RenderResult:
    """``thermal-action render``: the recording as a labelled thermal video.

    Args:
        recording: a ``.h5`` file or a read :class:`Recording`.
        out_mp4: the MP4 to write.
        gif: also write this GIF (same frames).
        predictions: a ``predictions.json`` from ``predict``, or predictions in memory;
            only those of this recording's sensor are drawn.
        annotations: an annotations JSON (or a loaded ``AnnotationSet``); its boxes of
            this sensor are drawn in grey with their labels.
        scale: integer upscaling (8 turns 40x60 into 320x480).
        fps: frames per second of the video (the sensors run at ~6).
        alert_rule: the fall alert rule whose alerts are highlighted: the one in the
            ``run.json`` beside the predictions file (what ``predict`` used), else the
            default :class:`~thermal_action.alert_rule.AlertRule`;
            :class:`~thermal_action.alert_rule.AlertOverrides` change it, an ``AlertRule``
            replaces it.
        max_hold: frames a keyframe's boxes stay on screen at most.
        start: first frame to render.
        stop: end of the frame range to render (exclusive; None = the end).
        gif_scale: upscaling of the GIF (default ``scale``); smaller keeps it light.
        font_size: label size in pixels (default ``max(9, 1.4 * scale)``).
        rooms: a layout file (``rooms.json``) or a read :class:`RoomMap`: the furniture of
            frames whose annotations have none (module docstring). Zones are drawn under the
            boxes whenever a layout is known.

    Returns:
        A :class:`RenderResult`.
    """
    # Before reading anything: a path that cannot be written fails now, naming it.
    check_writable(out_mp4, "the video")
    if gif is not None:
        check_writable(gif, "the GIF")
    rec = recording if isinstance(recording, Recording) else read_recording(recording)
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    stop = rec.num_frames if stop is None else min(int(stop), rec.num_frames)
    if not 0 <= start < stop:
        raise ValueError(f"empty frame range {start}..{stop} of {rec.num_frames} frames")
    font_size = font_size or max(9, int(round(1.4 * scale)))

    preds: list[Prediction] = []
    class_names: list[str] | None = None
    used_rule: AlertRule | None = None
    if predictions is not None:
        if isinstance(predictions, (str, Path)):
            path = Path(predictions)
            preds, class_names = read_predictions_file(path)
            used_rule = _run_rule(path.with_name("run.json"))
        else:
            preds = list(predictions)
            class_names = list(preds[0].class_names) if preds else None
        preds = [p for p in preds if p.sensor_id == rec.sensor_id]
        if not preds:
            logger.warning("no predictions for sensor %s in %s", rec.sensor_id, predictions)
    rule = resolve_alert_rule(used_rule, alert_rule)
    alerts: list[AlertEvent] = []
    if preds and class_names is not None and rule.fall_class in class_names:
        alerts = find_fall_alerts(preds, fall_class_index(class_names, rule.fall_class), rule, fps=fps)
    by_frame: dict[int, list[Prediction]] = {}
    for p in preds:
        by_frame.setdefault(p.frame_idx, []).append(p)
    shown_preds = _Shown.of(by_frame, max_hold)

    gt: dict[int, list[tuple[np.ndarray, str]]] = {}
    own_layouts: dict[int, RoomLayout] = {}  # keyframe -> the furniture its annotator boxed
    if annotations is not None:
        if isinstance(annotations, (str, Path)):
            from thermal_action.data.annotations import load_annotations

            annotations = load_annotations(annotations)
        for kf in annotations.keyframes:
            if kf.sensor_id != rec.sensor_id:
                continue
            xyxy = boxes_cxcywh_norm_to_xyxy(kf.boxes_cxcywh_norm, rec.width, rec.height)
            gt[int(kf.frame_idx)] = [
                (xyxy[i], "gt " + short_name(annotations.class_names[int(kf.labels[i])])) for i in range(kf.num_boxes)
            ]
            if kf.layout.known:
                own_layouts[int(kf.frame_idx)] = kf.layout
    shown_gt = _Shown.of(gt, max_hold)
    room_map = read_rooms(rooms) if isinstance(rooms, (str, Path)) else rooms
    layout_at = _layout_lookup(rec, own_layouts, room_map) if own_layouts or room_map is not None else None

    renderer = FrameRenderer(rec, shown_preds, shown_gt, alerts, scale, font_size, rec.frames[start:stop],
                             layout_at=layout_at)
    ew, eh = renderer.width, renderer.height
    gif_frames: list[Image.Image] = []
    gif_scale = scale if gif_scale is None else int(gif_scale)
    with Mp4Writer(out_mp4, ew, eh, fps) as video:
        for f in range(start, stop):
            image = renderer.render(f)
            video.write(image)
            if gif is not None:
                img = Image.fromarray(image)
                if gif_scale != scale:
                    img = img.resize((max(2, ew * gif_scale // scale), max(2, eh * gif_scale // scale)), Image.NEAREST)
                gif_frames.append(img)
    gif_path = None
    if gif is not None:
        gif_path = Path(gif)
        gif_path.parent.mkdir(parents=True, exist_ok=True)
        gif_frames[0].save(gif_path, save_all=True, append_images=gif_frames[1:], duration=int(round(1000 / fps)),
                           loop=0, optimize=False)
    logger.info("wrote %s (%d frames, %dx%d)%s", out_mp4, stop - start, ew, eh, f" and {gif_path}" if gif_path else "")
    return RenderResult(Path(out_mp4), gif_path, stop - start, ew, eh, alerts)
