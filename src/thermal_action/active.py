"""What to label next: an acquisition score over unlabelled keyframes, and the queue it orders.

::

    unlabelled keyframes (every 6th frame, away from labelled ones)
        │  person boxes: the keyframe's own, else the built-in detector + tracker
        ▼
    model (one checkpoint; each member of an ensemble on its own) ──► KeyframeScores
        │  probs (N, K), member_probs (M, N, K), track ids
        ▼
    per person:  u = H(p) / log K                      entropy of the class scores, 0..1
                 d = [H(p̄) - mean_m H(p_m)] / log K    ensemble disagreement (mutual information), 0..1
                 b = Σ_k p_k w_k,  w_k = ((1 + n_min) / (1 + n_k))^½   scarcity of the classes it leans to, 0..1
                 score = (u + d) · b                   expected_gain = (1 - max_k p_k) · b
    per keyframe: score = max over its people; expected_gain = sum over its people
        ▼
    rank_keyframes: "queue" (score, a keyframe next to an already chosen one of the same
    recording counts half), "rarest" (the fewest labels of a person's top-1 class first),
    or "random"; ``random_share`` of the queue drawn at random so it can be audited
        ▼
    [Suggestion] ──► the labelling page, or ``thermal-action label DATA_DIR --suggest N``

``n_k`` is the number of labelled boxes of class k (``label_counts``, else counted from the
dataset's annotations).

What ``expected_gain`` is: the number of people on the keyframe whose top-1 class the model
itself expects to be wrong (``1 - max p`` each), each weighted by the scarcity ``b`` of the
classes it leans to: the expected count of corrections a labeller makes there, in units of a
correction of a class with the fewest labels. What it is not: a forecast of how much frame-mAP
or fall AP the label buys (that is what ``benchmarks/bench_active.py`` measures, on average,
for the whole queue), and no better than the model's calibration: a confidently wrong model
expects no corrections.
"""

from __future__ import annotations

import csv
import datetime as _dt
import heapq
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermal_action.structures import DEFAULT_CLASS_NAMES, PREDICTION

logger = logging.getLogger(__name__)

STRATEGIES = ("queue", "random", "rarest")
#: A queue keyframe within this many frames of an already chosen keyframe of the same
#: recording counts half per such neighbour: the window of the default model (~10 s) makes
#: two keyframes 2 s apart nearly the same sample.
NEIGHBOUR_FRAMES = 12
NEIGHBOUR_DISCOUNT = 0.5


@dataclass(frozen=True)
class Suggestion:
    """One keyframe to label next.

    Attributes:
        recording: the recording's sensor id (``frames/<recording>.h5``).
        frame_index: the keyframe's frame in that recording.
        timestamp: capture time, seconds since the epoch (NaN when unknown).
        track_id: the person the score comes from (the most uncertain one), None when the
            boxes have no track ids.
        score: the acquisition score the queue is ordered by (a random pick shows its own).
        expected_gain: the scarcity-weighted number of corrections the model expects there
            (module docstring: what it is and what it is not).
        reason: one line saying why it was chosen.
    """

    recording: str
    frame_index: int
    timestamp: float
    track_id: int | None
    score: float
    expected_gain: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"recording": self.recording, "frame": self.frame_index, "timestamp": self.timestamp,
                "time": _iso(self.timestamp), "track": self.track_id, "score": round(self.score, 6),
                "expected_gain": round(self.expected_gain, 6), "reason": self.reason}


@dataclass(frozen=True)
class KeyframeScores:
    """The model's class scores of the people on one unlabelled keyframe.

    Attributes:
        recording: sensor id.
        frame_index: frame in the recording.
        timestamp: seconds since the epoch (NaN when unknown).
        probs: ``(N, K)`` class probabilities of the N people (the model's output).
        track_ids: ``(N,)`` int64 track ids, -1 where none.
        member_probs: ``(M, N, K)`` each ensemble member's probabilities, None for one model.
    """

    recording: str
    frame_index: int
    timestamp: float
    probs: np.ndarray
    track_ids: np.ndarray
    member_probs: np.ndarray | None = None


@dataclass(frozen=True)
class _Scored:
    key: tuple[str, int]
    timestamp: float
    score: float
    expected_gain: float
    track_id: int | None
    top_class: int  # the top-1 class of the person the score comes from
    rarest_count: int  # the fewest labels of any person's top-1 class here
    rarest_class: int
    uncertainty: float
    disagreement: float


# ----------------------------------------------------------------------------- scoring
def class_weights(label_counts: Sequence[float]) -> np.ndarray:
    """``(K,)`` scarcity weights ``w_k = ((1 + n_min) / (1 + n_k))^½`` in (0, 1]: 1 for the
    classes with the fewest labels, ~0.07 for one with 200 more."""
    n = np.asarray(label_counts, dtype=np.float64)
    return np.sqrt((1.0 + n.min()) / (1.0 + n))


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1)


def person_scores(probs: np.ndarray, member_probs: np.ndarray | None,
                  weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per-person terms of the acquisition score (module docstring).

    Args:
        probs: ``(N, K)`` class probabilities.
        member_probs: ``(M, N, K)`` or None.
        weights: ``(K,)`` from :func:`class_weights`.

    Returns:
        ``uncertainty``, ``disagreement``, ``boost``, ``score``, ``expected_gain``, each ``(N,)``.
    """
    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[-1]
    norm = math.log(k) if k > 1 else 1.0
    u = _entropy(p) / norm
    if member_probs is not None and len(member_probs) > 1:
        m = np.asarray(member_probs, dtype=np.float64)
        d = np.maximum(_entropy(m.mean(axis=0)) - _entropy(m).mean(axis=0), 0.0) / norm
    else:
        d = np.zeros(len(p))
    boost = p @ weights
    return {"uncertainty": u, "disagreement": d, "boost": boost, "score": (u + d) * boost,
            "expected_gain": (1.0 - p.max(axis=-1, initial=0.0)) * boost}


def _score_keyframe(ks: KeyframeScores, weights: np.ndarray, counts: np.ndarray) -> _Scored:
    terms = person_scores(ks.probs, ks.member_probs, weights)
    i = int(np.argmax(terms["score"]))
    tracks = np.asarray(ks.track_ids, dtype=np.int64).reshape(-1)
    top = np.asarray(ks.probs).argmax(axis=-1)
    j = int(np.argmin(counts[top]))
    return _Scored(key=(ks.recording, int(ks.frame_index)), timestamp=float(ks.timestamp),
                   score=float(terms["score"][i]), expected_gain=float(terms["expected_gain"].sum()),
                   track_id=int(tracks[i]) if len(tracks) > i and tracks[i] >= 0 else None,
                   top_class=int(top[i]), rarest_count=int(counts[top[j]]), rarest_class=int(top[j]),
                   uncertainty=float(terms["uncertainty"][i]), disagreement=float(terms["disagreement"][i]))


# ----------------------------------------------------------------------------- inputs
def _labelled_keyframes(dataset_or_dir: Any) -> tuple[list[Any], list[str] | None]:
    """The labelled keyframes and class names of a dataset folder (its ``annotations/*.json``),
    an ``AnnotationSet``, a ``ThermalClipDataset`` or a list of keyframes."""
    if isinstance(dataset_or_dir, (str, Path)):
        from thermal_action.data.annotations import load_annotations

        root = Path(dataset_or_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"{root} is not a directory (a dataset folder or a folder of recordings)")
        keyframes, names = [], None
        for path in sorted((root / "annotations").glob("*.json")) if (root / "annotations").is_dir() else []:
            if path.name == "class_mapping.json":
                continue
            anns = load_annotations(path)
            if names is not None and list(anns.class_names) != names:
                raise ValueError(f"{path}: its classes differ from those of the other annotation files")
            names = list(anns.class_names)
            keyframes.extend(anns.keyframes)
        return keyframes, names
    if hasattr(dataset_or_dir, "keyframes"):
        names = getattr(dataset_or_dir, "class_names", None)
        return list(dataset_or_dir.keyframes), None if names is None else list(names)
    return list(dataset_or_dir), None


def _as_scores(scores: Any) -> list[KeyframeScores]:
    if isinstance(scores, Mapping):
        from thermal_action.inference.unlabelled import combine_members

        out = []
        for (rec, frame), v in scores.items():
            if isinstance(v, KeyframeScores):
                out.append(v)
                continue
            a = np.asarray(v, dtype=np.float64)
            if a.ndim == 3:
                members = a
                probs = combine_members(a)
            elif a.ndim == 2:
                members, probs = None, a
            else:
                raise ValueError(f"scores of {rec} frame {frame}: expected (N, K) or (M, N, K), got {a.shape}")
            out.append(KeyframeScores(str(rec), int(frame), float("nan"), probs, np.full(len(probs), -1), members))
        return out
    return list(scores)


def _counts(label_counts: Any, keyframes: list[Any], class_names: Sequence[str]) -> np.ndarray:
    k = len(class_names)
    if label_counts is None:
        c = np.zeros(k, dtype=np.float64)
        for kf in keyframes:
            lab = np.asarray(kf.labels, dtype=np.int64)
            np.add.at(c, lab[(lab >= 0) & (lab < k)], 1)
        return c
    if isinstance(label_counts, Mapping):
        unknown = [name for name in label_counts if name not in class_names]
        if unknown:
            raise ValueError(f"label_counts names classes that are not among {list(class_names)}: {unknown}")
        return np.array([float(label_counts.get(name, 0)) for name in class_names])
    c = np.asarray(label_counts, dtype=np.float64).reshape(-1)
    if len(c) != k:
        raise ValueError(f"label_counts has {len(c)} entries for {k} classes")
    return c


# ----------------------------------------------------------------------------- ranking
def rank_keyframes(
    dataset_or_dir: Any,
    scores: Sequence[KeyframeScores] | Mapping[tuple[str, int], Any],
    *,
    strategy: str = "queue",
    n: int | None = None,
    seed: int = 0,
    random_share: float = 0.1,
    label_counts: Mapping[str, int] | Sequence[int] | None = None,
) -> list[Suggestion]:
    """The unlabelled keyframes to label next, best first.

    Args:
        dataset_or_dir: what is labelled already: a dataset folder (its
            ``annotations/*.json``; a folder of bare recordings has none), an
            ``AnnotationSet``, a ``ThermalClipDataset`` or a list of ``Keyframe``. Its
            keyframes are left out of the ranking and, without ``label_counts``, their boxes
            are the label counts.
        scores: the model's scores of the candidate keyframes: :class:`KeyframeScores`
            (:func:`score_recordings` and :func:`score_keyframes` make them), or a mapping
            ``(recording, frame_index) -> (N, K)`` probabilities or ``(M, N, K)`` ensemble
            member probabilities. Keyframes without people are never suggested.
        strategy: ``"queue"`` (the acquisition score, neighbours of chosen keyframes
            discounted), ``"rarest"`` (the rarest predicted class first, ties by score) or
            ``"random"``.
        n: how many (None: every candidate).
        seed: seeds the random picks.
        random_share: the share of a ``queue`` or ``rarest`` list drawn at random from the
            rest (every ``1 / random_share``-th place), so the ranking can be audited
            against chance; 0 for none.
        label_counts: labelled boxes per class (class name -> count, or ``(K,)`` in the
            model's class order); None: counted from ``dataset_or_dir``.

    Returns:
        At most ``n`` suggestions.

    Raises:
        ValueError: an unknown strategy, a share outside ``[0, 1]``, scores of another
            class count than the dataset's, or ``label_counts`` that do not fit.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"random_share must be in [0, 1], got {random_share}")
    if n is not None and n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    labelled, names = _labelled_keyframes(dataset_or_dir)
    done = {(str(kf.sensor_id), int(kf.frame_idx)) for kf in labelled}
    cands = [s for s in _as_scores(scores) if (s.recording, int(s.frame_index)) not in done
             and len(np.asarray(s.probs).reshape(-1)) > 0]
    if not cands:
        return []
    k = np.asarray(cands[0].probs).shape[-1]
    if any(np.asarray(c.probs).shape[-1] != k for c in cands):
        raise ValueError("the scores do not all have the same number of classes")
    if names is None or len(names) != k:
        if names is not None:
            raise ValueError(f"the scores have {k} classes, the dataset {len(names)}")
        names = list(DEFAULT_CLASS_NAMES) if len(DEFAULT_CLASS_NAMES) == k else [str(i) for i in range(k)]
    counts = _counts(label_counts, labelled, names)
    weights = class_weights(counts)
    scored = sorted((_score_keyframe(c, weights, counts) for c in cands), key=lambda s: s.key)
    n = len(scored) if n is None else min(n, len(scored))
    rng = np.random.default_rng(seed)

    if strategy == "random":
        order = rng.permutation(len(scored))[:n]
        return [_suggest(scored[i], "random choice", names) for i in order]
    if strategy == "rarest":
        # Fewest labels of the rarest top-1 class first; the score breaks ties.
        ranked = iter(sorted(scored, key=lambda s: (s.rarest_count, -s.score, s.key)))
        pick = lambda taken: next(s for s in ranked if s.key not in taken)
        why = lambda s: (f"rarest predicted class: {names[s.rarest_class]!r} "
                         f"({s.rarest_count} labels)")
    else:
        pick = _greedy_queue(scored)
        why = lambda s: _queue_reason(s, names, counts)

    audit_every = (1.0 / random_share) if random_share > 0 else math.inf
    taken: set[tuple[str, int]] = set()
    out: list[Suggestion] = []
    shuffled = iter(rng.permutation(len(scored)).tolist())
    for place in range(n):
        # Places 0.5/share, 1.5/share, ...: the audit slice is spread over the list.
        if math.floor((place + 1) / audit_every + 0.5) > math.floor(place / audit_every + 0.5):
            s = next(scored[i] for i in shuffled if scored[i].key not in taken)
            reason = "random audit slice (how a random keyframe would do)"
        else:
            s = pick(taken)
            reason = why(s)
        taken.add(s.key)
        out.append(_suggest(s, reason, names))
    return out


def _greedy_queue(scored: list[_Scored]):
    """``pick(taken)``: the best remaining keyframe, each chosen keyframe halving the score of
    its neighbours (within :data:`NEIGHBOUR_FRAMES` frames of the same recording). Scores only
    fall, so a lazy heap is exact."""
    heap = [(-s.score, s.key, 0) for s in scored]
    heapq.heapify(heap)
    by_key = {s.key: s for s in scored}
    chosen: dict[str, list[int]] = {}

    def discount(key: tuple[str, int]) -> int:
        return sum(abs(f - key[1]) <= NEIGHBOUR_FRAMES for f in chosen.get(key[0], ()))

    def pick(taken: set[tuple[str, int]]) -> _Scored:
        while True:
            _neg, key, seen = heapq.heappop(heap)
            if key in taken:
                continue
            now = discount(key)
            if now != seen:
                heapq.heappush(heap, (-by_key[key].score * NEIGHBOUR_DISCOUNT ** now, key, now))
                continue
            chosen.setdefault(key[0], []).append(key[1])
            return by_key[key]

    original = pick

    def pick_and_note(taken: set[tuple[str, int]]) -> _Scored:
        for rec, f in taken:  # random audit picks are neighbours too
            if f not in chosen.get(rec, ()):
                chosen.setdefault(rec, []).append(f)
        return original(taken)

    return pick_and_note


def _queue_reason(s: _Scored, names: Sequence[str], counts: np.ndarray) -> str:
    parts = [f"uncertain (entropy {s.uncertainty:.2f}"]
    if s.disagreement > 0:
        parts.append(f", ensemble disagreement {s.disagreement:.2f}")
    parts.append(f"); leans to {names[s.top_class]!r} ({int(counts[s.top_class])} labels)")
    return "".join(parts)


def _suggest(s: _Scored, reason: str, names: Sequence[str]) -> Suggestion:
    return Suggestion(recording=s.key[0], frame_index=s.key[1], timestamp=s.timestamp, track_id=s.track_id,
                      score=s.score, expected_gain=s.expected_gain, reason=reason)


def _iso(seconds: float) -> str | None:
    if not math.isfinite(seconds):
        return None
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC).isoformat(timespec="milliseconds")


# ----------------------------------------------------------------------------- running the model
def score_keyframes(predictor: Any, keyframes: Sequence[Any], frames_dir: str | Path) -> list[KeyframeScores]:
    """The model's scores of keyframes whose boxes are known (their labels are not read).

    Args:
        predictor: a :class:`~thermal_action.inference.predictor.Predictor`.
        keyframes: ``Keyframe`` objects (boxes, track ids, room).
        frames_dir: the folder of their ``<sensor_id>.h5`` recordings.
    """
    from thermal_action.data.hdf5 import read_recording
    from thermal_action.inference.predictor import ClipRequest
    from thermal_action.inference.unlabelled import score_requests

    out: list[KeyframeScores] = []
    by_rec: dict[str, list[Any]] = {}
    for kf in keyframes:
        by_rec.setdefault(kf.sensor_id, []).append(kf)
    for sensor, kfs in sorted(by_rec.items()):
        rec = read_recording(Path(frames_dir) / f"{sensor}.h5", valid_range=predictor.valid_range)
        requests = [ClipRequest(rec.frames, kf.frame_idx, kf.boxes_xyxy, clip_key=(sensor, kf.frame_idx),
                                layout=kf.layout) for kf in kfs]
        probs, members = score_requests(predictor, requests)
        out.extend(KeyframeScores(sensor, int(kf.frame_idx), kf.timestamp / 1000.0, p,
                                  np.asarray(kf.track_ids, np.int64), m) for kf, p, m in zip(kfs, probs, members))
    return out


def score_recordings(predictor: Any, recordings: Sequence[str | Path], labelled: Sequence[Any] = (),
                     every: int = PREDICTION.step, rooms: Any = None) -> list[KeyframeScores]:
    """Every ``every``-th frame of each recording not next to a labelled keyframe, its people
    found by the built-in detector and tracker, scored by the model
    (:func:`~thermal_action.inference.unlabelled.score_unlabelled`; ``predictor`` None: no
    model, uniform scores that only the ``random`` strategy can rank)."""
    from thermal_action.inference.unlabelled import score_unlabelled

    return [KeyframeScores(u.recording, u.frame_index, u.timestamp_ms / 1000.0, u.probs,
                           np.asarray(u.boxes.track_ids, np.int64), u.member_probs)
            for u in score_unlabelled(predictor, recordings, labelled, every, rooms)]


# ----------------------------------------------------------------------------- the command
def write_suggestions(path: str | Path, suggestions: Sequence[Suggestion]) -> Path:
    """``.csv`` (one row per keyframe) or anything else as JSON (``{"suggestions": [...]}``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [s.to_dict() for s in suggestions]
    if path.suffix.lower() == ".csv":
        fields = ["recording", "frame", "time", "timestamp", "track", "score", "expected_gain", "reason"]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text(json.dumps({"suggestions": rows}, indent=2) + "\n")
    return path


def suggest(data_dir: str | Path, n: int, checkpoint: str | Path | None = None, *, strategy: str = "queue",
            every: int = PREDICTION.step, seed: int = 0, random_share: float = 0.1,
            device: str = "cpu") -> list[Suggestion]:
    """The ``n`` keyframes of ``data_dir``'s recordings to label next.

    Args:
        data_dir: a dataset folder (``frames/*.h5``, labelled keyframes in
            ``annotations/*.json``) or a folder of bare ``.h5`` recordings.
        n: how many.
        checkpoint: the model whose scores rank the keyframes; None: no model, so the
            keyframes with people are drawn at random (``strategy`` must then be "random").
        strategy: see :func:`rank_keyframes`.
        every: frames between candidate keyframes.
        seed: see :func:`rank_keyframes`.
        random_share: see :func:`rank_keyframes`.
        device: where the model runs.

    Raises:
        ValueError: ``n < 1``, or a model-based strategy without a checkpoint.
        RecordingNotFoundError: no recordings in ``data_dir``.
    """
    from thermal_action.data.hdf5 import find_recordings

    if n < 1:
        raise ValueError(f"--suggest needs a number of keyframes >= 1, got {n}")
    root = Path(data_dir)
    frames_dir = root / "frames" if (root / "frames").is_dir() else root
    recordings = find_recordings([frames_dir])
    labelled, _ = _labelled_keyframes(root)
    if checkpoint is None:
        if strategy != "random":
            raise ValueError(f"strategy {strategy!r} ranks by a model's scores: pass --checkpoint, "
                             "or --strategy random")
        predictor = None
    else:
        from thermal_action.inference.predictor import Predictor

        predictor = Predictor.from_checkpoint(checkpoint, device=device)
    scores = score_recordings(predictor, recordings, labelled, every)
    return rank_keyframes(labelled, scores, strategy=strategy, n=n, seed=seed, random_share=random_share)


def suggest_cli(args: Any) -> int:
    """``thermal-action label DATA_DIR --suggest N [--checkpoint CKPT] [--out FILE]``.

    Reads ``args.data_dir``, ``args.suggest``, ``args.checkpoint`` and ``args.out``, and, where
    the parser has them, ``strategy``, ``every``, ``seed``, ``random_share`` and ``device``.
    Writes the suggestions (``--out``: ``.csv`` or JSON; default ``DATA_DIR/suggestions.json``)
    and prints one line per keyframe.
    """
    strategy = getattr(args, "strategy", None) or ("queue" if args.checkpoint else "random")
    found = suggest(args.data_dir, int(args.suggest), args.checkpoint, strategy=strategy,
                    every=int(getattr(args, "every", None) or PREDICTION.step), seed=int(getattr(args, "seed", 0) or 0),
                    random_share=float(getattr(args, "random_share", 0.1) if getattr(args, "random_share", None)
                                       is not None else 0.1),
                    device=getattr(args, "device", None) or "cpu")
    out = Path(args.out) if args.out else Path(args.data_dir) / "suggestions.json"
    write_suggestions(out, found)
    for s in found:
        track = "-" if s.track_id is None else s.track_id
        print(f"{s.recording}\tframe {s.frame_index}\t{_iso(s.timestamp) or '-'}\ttrack {track}\t"
              f"score {s.score:.3f}\tgain {s.expected_gain:.3f}\t{s.reason}")
    print(f"{len(found)} keyframes to label next written to {out}")
    return 0
