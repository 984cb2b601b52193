"""What to generate: :class:`SynthConfig`, and the frame size every synthetic recording has."""

from __future__ import annotations

from dataclasses import dataclass

from thermal_action.structures import FRAME_HEIGHT, FRAME_WIDTH

H, W = FRAME_HEIGHT, FRAME_WIDTH

#: Largest dataset :class:`SynthConfig` accepts, in bytes of float32 frames (a recording is simulated
#: whole in memory, several copies of it, before it is written).
MAX_FRAME_BYTES = 10e9


@dataclass
class SynthConfig:
    """What to generate. Defaults give 8 recordings x 400 frames (~2 s to write)."""

    num_recordings: int = 8  # sensor files
    frames_per_recording: int = 400  # frames per file (~68 s at ~6 Hz)
    seed: int = 0  # everything is a function of the seed
    val_recordings: int = 2  # the last recordings, held out whole for val.json
    recordings_per_room: int = 2  # recordings sharing one room (background, furniture, sensor MAC)
    min_people: int = 1  # people per recording, lower bound
    max_people: int = 3  # people per recording, upper bound
    keyframe_spacing: tuple[int, int] = (6, 12)  # frames between regular keyframes (inclusive range)
    transition_keyframe_prob: float = 0.85  # chance that a transition between keyframes gets a keyframe
    max_dropped_fraction: float = 0.13  # upper bound of the per-file fraction of frames with dropped packets
    pack_dropped_packets: bool = True  # random packets lost, the rest packed at the frame start; False: tail lost
    box_carry_prob: float = 0.15  # chance an unchanged person's box is copied from the previous keyframe
    data_time_jitter_ms: int = 0  # max |offset| of raw data_time from its frame (ms; kept under half the step)
    noise_std: float = 0.3  # °C, mean temporal noise of the sensor
    start_timestamp_ms: int = 1_760_000_000_000  # first recording's first timestamp (ms since epoch)
    unlabelled_furniture_share: float = 0.25  # share of recordings (never a room's first) without furniture boxes: their layout is in rooms.json

    def validate(self) -> None:
        if self.num_recordings < 1:
            raise ValueError(f"num_recordings must be >= 1, got {self.num_recordings}")
        if self.frames_per_recording < 2:
            raise ValueError(f"frames_per_recording must be >= 2, got {self.frames_per_recording}")
        if not 0 <= self.val_recordings < self.num_recordings:
            raise ValueError(
                f"val_recordings must be in [0, num_recordings - 1] = [0, {self.num_recordings - 1}], "
                f"got {self.val_recordings}"
            )
        if not 1 <= self.min_people <= self.max_people:
            raise ValueError(f"need 1 <= min_people <= max_people, got {self.min_people}, {self.max_people}")
        lo, hi = self.keyframe_spacing
        if not 1 <= lo <= hi:
            raise ValueError(f"keyframe_spacing must be 1 <= lo <= hi, got {self.keyframe_spacing}")
        if not 0.0 <= self.unlabelled_furniture_share <= 1.0:
            raise ValueError(f"unlabelled_furniture_share must be in [0, 1], got {self.unlabelled_furniture_share}")
        frame_bytes = self.num_recordings * self.frames_per_recording * H * W * 4
        if frame_bytes > MAX_FRAME_BYTES:
            raise ValueError(
                f"{self.num_recordings} recordings x {self.frames_per_recording} frames of {H}x{W} float32 are "
                f"{frame_bytes / 1e9:.3g} GB of frames, over the {MAX_FRAME_BYTES / 1e9:.0f} GB limit (each "
                "recording is built in memory first); ask for fewer frames or recordings"
            )
        if self.recordings_per_room < 1:
            raise ValueError(f"recordings_per_room must be >= 1, got {self.recordings_per_room}")
