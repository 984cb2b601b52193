"""Worker processes: each owns a share of the sensors and runs the streaming predictor on them.

A sensor's frames go to the one worker that owns it (:mod:`~thermal_action.serve.routing`),
so its ring buffer, detector and tracker live in one place. The windows of all sensors that
complete in one round go through the model in one batched forward pass. Workers talk to the service through two queues each
(frames in, results out); a worker that dies takes only its own queues with it: the pool
starts a new one in its place and its sensors begin new streams there.

Messages in (``inbox``) and out (``outbox``) are the types of :mod:`~thermal_action.serve.messages`:
:class:`Frames`, :class:`EndStream`, :class:`SetLayout` and :class:`Stop` in;
:class:`Ready`, :class:`Round` and :class:`Failed` (the model could not be loaded; the
worker then exits) out.

Lifetime: a worker is stopped by its service (``("stop",)``, then killed after a timeout) and
never outlives it: a watcher thread waits on the parent's end of the spawn pipe and exits the
worker as soon as the service process is gone, however it went (SIGKILL, a crash). Workers
ignore SIGINT and SIGTERM, which a terminal's Ctrl-C and systemd send to the whole process
group: the service stops them in order instead.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from thermal_action.alert_rule import AlertRule
from thermal_action.data.rooms import RoomLayout
from thermal_action.serve.config import ServeConfig
from thermal_action.serve.messages import (
    EndStream, Failed, Frames, FrameError, FrameTracks, InboxMessage, LiveFrame, OutboxMessage, QueuedFrame, Ready,
    Round, ScoredPerson, SetLayout, Stop,
)
from thermal_action.serve.model import ModelFile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker needs to build its streaming predictor (picklable), made from the service
    config in one place (:meth:`from_config`). The model is the one the service read
    (:mod:`~thermal_action.serve.model`); the alert rule the one it resolved: a worker never
    decides either."""

    model: ModelFile
    backend: str
    threads: int
    step: int
    causal: bool
    batch_wait: int
    batch_clips: int
    alert_rule: AlertRule
    alerts: bool  # False: the model lacks the rule's fall class
    fps: float
    max_batch_frames: int
    live_interval_s: float

    @classmethod
    def from_config(cls, cfg: ServeConfig, model: ModelFile, alert_rule: AlertRule, alerts: bool) -> "WorkerOptions":
        return cls(model, cfg.backend, cfg.threads_per_worker, cfg.step, cfg.causal, cfg.batch_wait, cfg.batch_clips,
                   alert_rule, alerts, cfg.fps, cfg.max_batch_frames, 1.0 / cfg.dashboard_fps)


def _build_stream(opts: WorkerOptions) -> Any:
    from thermal_action.inference.predictor import Predictor
    from thermal_action.inference.streaming import StreamingPredictor

    # An .onnx runs in ONNX Runtime, whose threads it sets itself (a gateway serving one has no torch).
    if opts.backend == "torch" and opts.model.data is not None:
        import torch

        torch.set_num_threads(opts.threads)
    if opts.model.data is None:  # an .onnx file: ONNX Runtime opens it
        opts.model.check_unchanged()
    predictor = Predictor.from_checkpoint(opts.model.path, backend=opts.backend, max_clips_per_batch=opts.batch_clips,
                                          num_threads=opts.threads, data=opts.model.data)
    return StreamingPredictor(predictor, step=opts.step, causal=opts.causal, alert_rule=opts.alert_rule,
                              alerts=opts.alerts, fps=opts.fps, batch_wait=opts.batch_wait)


def _frame_count(msg: InboxMessage) -> int:
    return len(msg.frames) if isinstance(msg, Frames) else 0


def _take(inbox: Any, max_frames: int, wait: float = 0.2) -> list[InboxMessage]:
    """Blocks for one message (up to ``wait`` s), then takes what else is waiting (up to
    ``max_frames`` frames)."""
    try:
        msgs = [inbox.get(timeout=wait)]
    except queue.Empty:
        return []
    frames = _frame_count(msgs[0])
    while frames < max_frames:
        try:
            msg = inbox.get_nowait()
        except queue.Empty:
            break
        msgs.append(msg)
        frames += _frame_count(msg)
    return msgs


@dataclass(frozen=True)
class _Arrived:
    """A frame inside the worker, with when its message arrived."""

    frame: Any  # streaming.StreamFrame (imported with the model, in the worker process)
    arrival_s: float


class _Worker:
    """The loop inside a worker process."""

    def __init__(self, index: int, opts: WorkerOptions, stream: Any):
        from thermal_action.inference.streaming import StreamFrame

        self.index = index
        self.opts = opts
        self.stream = stream
        self.StreamFrame = StreamFrame
        self.arrivals: dict[str, dict[int, float]] = {}  # sensor -> stream frame index -> arrival
        self.live_sent: dict[str, float] = {}
        self.live_due: set[str] = set()  # sensors with a newer frame than their last live view
        self.tracked: dict[str, list] = {}  # sensor -> (timestamp, FrameBoxes) of the round's frames

    def _push(self, batch: list[_Arrived], out: Round) -> None:
        """Pushes a batch; a batch with more frames of one sensor than its stream buffer holds
        (a backlog) goes in parts, so that every frame's tracked boxes can be read back."""
        limit = self.stream.predictor.window_length
        part: list[_Arrived] = []
        count: dict[str, int] = {}
        for item in batch:
            sensor = item.frame.sensor_id
            if count.get(sensor, 0) == limit:
                self._push_part(part, out)
                part, count = [], {}
            part.append(item)
            count[sensor] = count.get(sensor, 0) + 1
        self._push_part(part, out)

    def _push_part(self, batch: list[_Arrived], out: Round) -> None:
        if not batch:
            return
        errors: list[tuple[Any, Exception]] = []
        seen = {a.frame.sensor_id: self.stream.frames_seen(a.frame.sensor_id) for a in batch}
        t_model = self.stream.stats.seconds_model
        passes = self.stream.stats.forward_passes
        preds = self.stream.push_many([a.frame for a in batch], errors=errors)
        refused = {id(f) for f, _ in errors}
        taken: dict[str, int] = {}
        for a in batch:  # the stream index each accepted frame got
            f = a.frame
            if id(f) in refused:
                continue
            arr = self.arrivals.setdefault(f.sensor_id, {})
            arr[seen[f.sensor_id]] = a.arrival_s
            seen[f.sensor_id] += 1
            taken[f.sensor_id] = taken.get(f.sensor_id, 0) + 1
        for sensor, n in taken.items():  # the boxes tracked in each, while the stream's buffer holds them
            self.tracked.setdefault(sensor, []).extend(self.stream.recent_boxes(sensor, n))
        by_kind: dict[tuple[str, str], list] = {}
        for f, e in errors:
            kind = "invalid_frame" if type(e).__name__ == "DatasetError" else "bad_frame"
            by_kind.setdefault((f.sensor_id, kind), [0, str(e)])[0] += 1
        out.errors.extend(FrameError(s, k, msg, n) for (s, k), (n, msg) in by_kind.items())
        self._collect(preds, out)
        out.model_s += self.stream.stats.seconds_model - t_model
        out.forward_passes += self.stream.stats.forward_passes - passes

    def _collect(self, preds: list, out: Round) -> None:
        lag = self.stream.lag_frames
        now = time.time()
        for p in preds:
            arr = self.arrivals.get(p.sensor_id, {})
            arrival = arr.get(p.frame_idx + lag)
            if arrival is None:  # completed by a flush (the window repeats the newest frame)
                arrival = max(arr.values()) if arr else now
            out.predictions.append(ScoredPerson(p.sensor_id, int(p.frame_idx), int(p.timestamp), int(p.track_id),
                                                tuple(float(v) for v in p.box_xyxy),
                                                np.asarray(p.scores, np.float32), arrival,
                                                p.bed_share, p.room_source))
        for sensor, arr in self.arrivals.items():  # forget arrivals no window can complete any more
            if len(arr) > 2 * self.stream.predictor.window_length:
                keep = max(arr) - self.stream.predictor.window_length
                for k in [k for k in arr if k < keep]:
                    del arr[k]
        out.alerts.extend(self.stream.pop_alerts())

    def _live(self, sensors: set[str], out: Round) -> None:
        now = time.monotonic()
        self.live_due |= sensors
        for s in list(self.live_due):
            latest = self.stream.latest(s)
            if latest is None:
                self.live_due.discard(s)
                continue
            if s in sensors:
                out.repaired[s] = int(latest[3])
            if now - self.live_sent.get(s, -1e9) < self.opts.live_interval_s:
                continue
            self.live_due.discard(s)
            frame, ts, boxes, repaired = latest
            out.live[s] = LiveFrame(np.asarray(frame, np.float32), int(ts), np.asarray(boxes.boxes_xyxy, np.float32),
                                    np.asarray(boxes.track_ids, np.int64), int(repaired))
            self.live_sent[s] = now

    def idle(self) -> Round | None:
        """Live views held back by the rate limit, once no frames are waiting."""
        if not self.live_due:
            return None
        out = Round()
        self._live(set(), out)
        return out if out.live else None

    def round(self, msgs: list[InboxMessage]) -> tuple[Round, bool]:
        """Runs one round over ``msgs``; returns its results and whether to stop."""
        out = Round()
        batch: list[_Arrived] = []
        touched: set[str] = set()
        stop = False
        for msg in msgs:
            if isinstance(msg, Frames):
                touched.add(msg.sensor_id)
                out.frames_done += len(msg.frames)
                batch.extend(_Arrived(self.StreamFrame(msg.sensor_id, f.frame, f.timestamp, f.boxes_xyxy), msg.arrival_s)
                             for f in msg.frames)
            elif isinstance(msg, SetLayout):
                self._push(batch, out)  # frames before the change keep the old layout
                batch = []
                self.stream.set_layout(msg.sensor_id, msg.layout)
            elif isinstance(msg, EndStream):
                self._push(batch, out)  # frames before the end first, in order
                batch = []
                self._collect(self.stream.flush(msg.sensor_id), out)
                self.arrivals.pop(msg.sensor_id, None)
                touched.discard(msg.sensor_id)
            elif isinstance(msg, Stop):
                stop = True
        self._push(batch, out)
        self._live(touched, out)
        out.tracks = {sensor: FrameTracks.pack(frames) for sensor, frames in self.tracked.items() if frames}
        self.tracked = {}
        return out, stop


def _exit_with_parent() -> None:
    """Starts a thread that ends this process the moment its parent process is gone."""
    parent = mp.parent_process()
    if parent is None:  # not started by multiprocessing
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of the spawn pipe closes: the parent is gone
        os._exit(0)  # nothing here is worth saving without the service, and nobody reads the code

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_main(index: int, opts: WorkerOptions, inbox: Any, outbox: Any) -> None:
    """Entry point of a worker process."""
    _exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format=f"[worker {index}] %(levelname)s %(message)s")
    try:
        stream = _build_stream(opts)
    except Exception as e:  # the service reports it and stops restarting
        outbox.put(Failed(f"{type(e).__name__}: {e}"))
        return
    worker = _Worker(index, opts, stream)
    outbox.put(Ready(os.getpid()))
    while True:
        msgs = _take(inbox, opts.max_batch_frames)
        if not msgs:
            held = worker.idle()
            if held is not None:
                outbox.put(held)
            continue
        result, stop = worker.round(msgs)
        outbox.put(result)
        if stop:
            return


@dataclass
class _Slot:
    index: int
    process: Any = None
    inbox: Any = None
    outbox: Any = None
    reader: threading.Thread | None = None
    pid: int | None = None
    ready: bool = False
    pending: int = 0  # frames put and not yet reported done
    restarts: int = 0
    generation: int = 0
    failed: str | None = None


class WorkerPool:
    """Starts ``n`` worker processes, restarts any that dies, and hands their messages to
    ``on_message(worker, message)`` (called from one reader thread per worker).

    Args:
        n: worker processes.
        opts: how each builds its predictor.
        on_message: receives every message a worker sends.
        on_restart: ``on_restart(worker)`` after a worker was replaced (its sensors' streams
            start again from frame 0).
    """

    def __init__(self, n: int, opts: WorkerOptions, on_message: Callable[[int, OutboxMessage], None],
                 on_restart: Callable[[int, int], None] | None = None):
        if n < 1:
            raise ValueError(f"need at least one worker, got {n}")
        self.opts = opts
        self.on_message = on_message
        self.on_restart = on_restart
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self.slots = [_Slot(i) for i in range(n)]
        self._stopping = False
        self._supervisor: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self.slots)

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)
        self._supervisor = threading.Thread(target=self._supervise, name="serve-supervisor", daemon=True)
        self._supervisor.start()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Blocks until every worker has loaded its model; raises if one failed or the time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            failed = [s for s in self.slots if s.failed]
            if failed:
                raise RuntimeError(f"worker {failed[0].index} could not load the model: {failed[0].failed}")
            if all(s.ready for s in self.slots):
                return
            time.sleep(0.05)
        raise TimeoutError(f"workers not ready after {timeout:.0f} s")

    def _spawn(self, slot: _Slot) -> None:
        slot.generation += 1
        slot.inbox = self._ctx.Queue()
        slot.outbox = self._ctx.Queue()
        slot.ready = False
        slot.pending = 0
        slot.process = self._ctx.Process(target=worker_main, args=(slot.index, self.opts, slot.inbox, slot.outbox),
                                         name=f"thermal-serve-worker-{slot.index}", daemon=True)
        slot.process.start()
        slot.pid = slot.process.pid
        slot.reader = threading.Thread(target=self._read, args=(slot, slot.generation, slot.outbox),
                                       name=f"serve-reader-{slot.index}", daemon=True)
        slot.reader.start()

    def _read(self, slot: _Slot, generation: int, outbox: Any) -> None:
        while not self._stopping and slot.generation == generation:
            try:
                msg = outbox.get(timeout=0.5)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            if isinstance(msg, Ready):
                slot.ready = True
            elif isinstance(msg, Failed):
                slot.failed = msg.reason
            elif isinstance(msg, Round):
                with self._lock:
                    slot.pending = max(0, slot.pending - msg.frames_done)
            try:
                self.on_message(slot.index, msg)
            except Exception:  # a bug in handling must not kill the reader
                logger.exception("handling a message of worker %d", slot.index)

    def _supervise(self) -> None:
        while not self._stopping:
            time.sleep(0.2)
            for slot in self.slots:
                p = slot.process
                if self._stopping or p is None or p.is_alive() or slot.failed:
                    continue
                if not slot.ready:  # died before its model loaded: restarting would loop
                    slot.failed = f"exited with code {p.exitcode} before loading the model"
                    logger.error("worker %d %s", slot.index, slot.failed)
                    continue
                lost = slot.pending
                logger.warning("worker %d (pid %s) exited with code %s; %d queued frames lost; restarting",
                               slot.index, slot.pid, p.exitcode, lost)
                slot.restarts += 1
                self._spawn(slot)
                if self.on_restart is not None:
                    self.on_restart(slot.index, lost)

    def put_frames(self, worker: int, sensor_id: str, frames: list[QueuedFrame], max_pending: int) -> bool:
        """Queues frames for a worker unless it already has ``max_pending`` waiting."""
        slot = self.slots[worker]
        with self._lock:
            if slot.pending + len(frames) > max_pending:
                return False
            slot.pending += len(frames)
        slot.inbox.put(Frames(sensor_id, time.time(), tuple(frames)))
        return True

    def end_stream(self, worker: int, sensor_id: str) -> None:
        self.slots[worker].inbox.put(EndStream(sensor_id))

    def set_layout(self, worker: int, sensor_id: str, layout: RoomLayout) -> None:
        """Sends a sensor's room layout to the worker that owns it."""
        self.slots[worker].inbox.put(SetLayout(sensor_id, layout))

    def pending(self) -> list[int]:
        """Frames put and not yet reported done, per worker."""
        with self._lock:
            return [s.pending for s in self.slots]

    def alive(self) -> int:
        return sum(1 for s in self.slots if s.process is not None and s.process.is_alive() and s.ready)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        for slot in self.slots:
            try:
                slot.inbox.put(Stop())
            except (OSError, ValueError):
                pass
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(1.0)
