"""Box recall and precision of the built-in person detector on annotated keyframes.

The detector runs over each whole recording in order, on the reader's repaired °C frames
(exactly what ``predict`` and streaming give it), and is scored at the annotated keyframes: a detection matches an annotated person box at
IoU >= 0.5 (greedy, best IoU first, each box used once). Reported for the raw
detections and for the tracker's output (confirmed tracks, coasting ones included),
on a freshly generated synthetic dataset and, when present, on the real sample
(whose annotators' boxes are loose and often carried forward unchanged, so IoU 0.5
is harsh there; IoU 0.3 is reported too). "Fresh boxes" leaves out boxes identical
to the same person's previous keyframe box (carried forward by the annotator, which
the synthetic generator imitates), which may lag behind a moving person.

Usage::

    python benchmarks/bench_detector.py                      # synthetic (generated) + real sample
    python benchmarks/bench_detector.py --synth-dir DIR      # an existing dataset instead
    python benchmarks/bench_detector.py --recordings 4 --frames 300 --seed 1

Prints a JSON object and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from thermal_action.data.hdf5 import read_recording
from thermal_action.inference.boxes import track_detections
from thermal_action.people.person_detector import PersonDetector
from thermal_action.structures import DEFAULT_CLASS_NAMES, box_iou_xyxy

REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "thermal_sample"  # ../shared beside the checkout


def load_keyframes(dataset: Path) -> dict[str, dict[int, list[tuple[np.ndarray, int, bool]]]]:
    """``sensor -> frame_idx -> [(box_xyxy (4,), category_id, carried), ...]`` from train and val,
    read with the package's annotation reader.

    ``carried`` marks a box identical to the same person's box at their previous
    keyframe: annotators copy boxes forward, so such a box may lag behind the person.
    """
    from thermal_action.data.annotations import load_annotations

    out: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    rows: dict[str, list] = defaultdict(list)
    for split in ("train", "val"):
        path = dataset / "annotations" / f"{split}.json"
        if not path.exists():
            continue
        for kf in load_annotations(path).keyframes:
            out[kf.sensor_id].setdefault(kf.frame_idx, [])
            for box, norm, label, track in zip(kf.boxes_xyxy, kf.boxes_cxcywh_norm, kf.labels, kf.track_ids):
                rows[kf.sensor_id].append((kf.frame_idx, int(track), tuple(np.round(norm, 6)), int(label), box))
    for sensor, anns in rows.items():
        last: dict = {}
        for frame_idx, object_id, norm, category, box in sorted(anns, key=lambda r: (r[0], r[1])):
            carried = object_id >= 0 and last.get(object_id) == norm
            last[object_id] = norm
            out[sensor][frame_idx].append((np.asarray(box, np.float64), category, carried))
    return out


def match(gt: np.ndarray, pred: np.ndarray, thr: float) -> np.ndarray:
    """Greedy one-to-one matching; returns ``(G,)`` bool, which gt boxes were found."""
    found = np.zeros(len(gt), bool)
    if len(gt) == 0 or len(pred) == 0:
        return found
    iou = box_iou_xyxy(gt, pred)
    used = set()
    for k in np.argsort(-iou, axis=None).tolist():
        g, p = divmod(k, iou.shape[1])
        if iou[g, p] < thr:
            break
        if found[g] or p in used:
            continue
        found[g] = True
        used.add(p)
    return found


class Score:
    """Counts matches over keyframes: recall, precision, recall per class and on fresh boxes."""

    def __init__(self) -> None:
        self.tp = self.n_gt = self.n_pred = 0
        self.fresh = [0, 0]  # found, total among boxes not carried forward
        self.per_class_found: dict[int, list[int]] = defaultdict(lambda: [0, 0])

    def add(self, gt: list[tuple[np.ndarray, int, bool]], pred: np.ndarray, thr: float) -> None:
        boxes = np.array([b for b, _, _ in gt]).reshape(-1, 4)
        found = match(boxes, pred, thr)
        self.tp += int(found.sum())
        self.n_gt += len(gt)
        self.n_pred += len(pred)
        for (_, c, carried), f in zip(gt, found):
            self.per_class_found[c][0] += int(f)
            self.per_class_found[c][1] += 1
            if not carried:
                self.fresh[0] += int(f)
                self.fresh[1] += 1

    def summary(self) -> dict:
        return {
            "recall": round(self.tp / max(self.n_gt, 1), 4),
            "precision": round(self.tp / max(self.n_pred, 1), 4),
            "recall_fresh_boxes": round(self.fresh[0] / max(self.fresh[1], 1), 4),
            "gt_boxes": self.n_gt,
            "fresh_boxes": self.fresh[1],
            "predicted_boxes": self.n_pred,
            "recall_per_class": {
                DEFAULT_CLASS_NAMES[c]: f"{f}/{n}" for c, (f, n) in sorted(self.per_class_found.items())
            },
        }


def evaluate(dataset: Path, thresholds: tuple[float, ...]) -> dict:
    keyframes = load_keyframes(dataset)
    scores = {(kind, t): Score() for kind in ("detector", "tracker") for t in thresholds}
    frames_total, seconds = 0, 0.0
    for sensor, kfs in sorted(keyframes.items()):
        # What predict and streaming do: the reader's repaired °C frames into the detector.
        recording = read_recording(dataset / "frames" / f"{sensor}.h5")
        t0 = time.perf_counter()
        detections = PersonDetector().detect_recording(recording.frames)
        seconds += time.perf_counter() - t0
        frames_total += recording.num_frames
        tracked = {f: fb.boxes_xyxy for f, fb in track_detections(detections).items()}
        for idx, gt in kfs.items():
            for t in thresholds:
                scores[("detector", t)].add(gt, detections[idx].boxes_xyxy, t)
                scores[("tracker", t)].add(gt, tracked.get(idx, np.zeros((0, 4), np.float32)), t)
    return {
        "recordings": len(keyframes),
        "keyframes": sum(len(k) for k in keyframes.values()),
        "frames": frames_total,
        "detector_ms_per_frame": round(1000 * seconds / max(frames_total, 1), 3),
        "results": {f"{kind}@iou{t}": s.summary() for (kind, t), s in scores.items()},
    }


def markdown(report: dict) -> str:
    lines = [
        "| data | output | IoU | recall | precision | recall, fresh boxes | GT boxes (fresh) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, rep in report.items():
        if not isinstance(rep, dict) or "results" not in rep:
            continue
        for key, r in rep["results"].items():
            kind, thr = key.split("@iou")
            lines.append(
                f"| {name} | {kind} | {thr} | {r['recall']:.3f} | {r['precision']:.3f} | "
                f"{r['recall_fresh_boxes']:.3f} | {r['gt_boxes']} ({r['fresh_boxes']}) |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synth-dir", type=Path, default=None, help="existing synthetic dataset (else one is generated)")
    ap.add_argument("--recordings", type=int, default=8, help="synthetic recordings to generate")
    ap.add_argument("--frames", type=int, default=400, help="frames per generated recording")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", type=Path, default=REAL_SAMPLE, help="real dataset, scored when present")
    args = ap.parse_args(argv)

    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        synth_dir = args.synth_dir
        if synth_dir is None:
            from thermal_action.data.synth.config import SynthConfig
            from thermal_action.data.synth.write import generate_dataset

            synth_dir = Path(tmp) / "synth"
            generate_dataset(
                synth_dir, SynthConfig(num_recordings=args.recordings, frames_per_recording=args.frames, seed=args.seed)
            )
        report["synthetic"] = evaluate(synth_dir, (0.5,))
    if (args.real / "annotations").exists():
        report["real_sample"] = evaluate(args.real, (0.5, 0.3))
    print(json.dumps(report, indent=2))
    print()
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
