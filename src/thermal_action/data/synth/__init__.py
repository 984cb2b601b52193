"""A synthetic thermal action dataset, written in exactly the on-disk format of real recordings.

``generate_dataset(out_dir, SynthConfig(...))`` writes ``frames/<sensor>.h5``,
``frames/sensor_info.json``, ``annotations/{train,val,class_mapping}.json`` and the
labelling tool's ``raw_annotations/<sensor>_annotation.json`` (see ``docs/data-format.md``).
``frames/sensor_info.json``, ``annotations/{train,val,class_mapping}.json`` (with the
furniture and objects as ``context_objects``, as ``convert-annotations`` writes them), the
labelling tool's ``raw_annotations/<sensor>_annotation.json`` (see DATA_FORMAT.md) and
``rooms.json`` (every room's furniture over time, see :mod:`thermal_action.data.rooms`).
``generate_day(out_dir, DayConfig(hours=...))`` (:mod:`.day`) writes one long fall-free
recording of one resident for the alert benchmark.
Everything is drawn from ``numpy.random.default_rng`` streams keyed by the seed, so
the same config gives byte-identical files.

The generative model
====================

Rooms. Recordings come in rooms (``recordings_per_room``, default 2; a room is one
sensor with one MAC address, its recordings are ``SYNrr_R1``, ``SYNrr_R2``...).
A room has a background level of 16.3-18.7 °C, a linear gradient (up to ~1.5 °C
across the frame), a few smooth ±0.6 °C bumps, in most rooms the warm ring of the
lens border (+1.5-2.5 °C outside a ~29 px circle, as in real frames) and sometimes
a cool patch (window, floor; -1.5 to -3 °C). Furniture are static soft rectangles, in
varied layouts: a bed (75 % of rooms; ~20 x 11 px, a quarter of them double beds
~21 x 15 px, +0.8-1.6 °C; against a wall, long side or head end, or free-standing) and/or
a couch (~18 x 8.5 px; every room has a bed or a couch), 0-3 chairs (+1-2 °C), maybe a
table (slightly cool). Between two recordings of a room its furniture changes with
probability 0.6 (a bed or couch moved or turned, a chair added, moved or taken away, a
couch or bed added or removed; ``SynthRecording.layout_changes``); ``rooms.json`` holds,
per room (MAC address), a layout valid from the first frame of each recording whose
furniture differs from the one before. A room's first recording always has its furniture
boxed by the annotator; later ones miss them with probability such that
``unlabelled_furniture_share`` (0.25) of all recordings rely on ``rooms.json`` for
their layout. Objects are small and warm: a water kettle (peak 38-45 °C) and sometimes
a laptop (+3-5 °C), placed again for every recording.

People. One to three people per recording, each a sum of up to four anisotropic
Gaussians in body coordinates (torso, head, legs, arms) scaled by the person's
excess temperature (6-8 °C, so the hottest pixel in a box is ~5-8 °C above the
background) and body size (0.9-1.1). Vertical extents are squeezed by 0.78 (a pixel
row covers more floor than a column: real standing boxes are ~11 x 8 px). Every
posture is a parameter vector (``_POSTURES``); median tight box, long x short side,
measured on the default dataset (annotated boxes add a 0-2 px margin):

=================  =====================================  ===========
posture            shape (overhead)                       tight box
=================  =====================================  ===========
standing/walking   compact round blob, hot head centre    9 x 7.6
leaning            standing, stretched and shifted        9 x 6.9
                   towards the wall it faces
sitting            torso plus cooler legs in front        10.7 x 8
lying (floor/bed)  torso, head, legs in a line            15-17 x 6-7
kneeling           torso plus lower legs across, behind   10.5 x 8
bending            elongated torso, hot head at one end   12 x 7.6
crouching          small, compact, hotter                 8.3 x 6.5
lower-other        sitting on the floor, legs out;        15.7 x 6.8
                   varied per instance (±20 %)
other              arms out / stretching, arms            12 x 8
                   oscillate; varied per instance (±25 %)
=================  =====================================  ===========

Actions. Each person follows a script planned by a small state machine: from
standing they walk somewhere (0.55-1.1 px/frame along a straight path, shoulders
across the direction of travel, a ±0.25 px lateral gait sway), stand (sway ~0.1
px), go to a chair or couch (or, now and then, the edge of the bed) and sit, go to a bed or
couch and lie down (class 4 either way), lean on a wall, go down to a lower position
(half the time beside a piece of furniture, facing it, as when picking something up) and
come back, do "other", or fall. Postures change
by morphing the parameter vector (smoothstep easing), labelled with the
transition class:

- normal transitions (class 6; sit down/up, to and from lower positions, getting
  up after a fall): 6-12 frames (1-2 s at ~6 Hz; 12-18 to get up after a fall);
- to and from the bed (class 8): 8-18 frames, the body moves onto the bed and
  turns along it;
- a fall (class 7): 3-6 frames (0.5-1 s) with accelerating easing, then lying on the
  floor (class 3), until the end of the recording in 80 % of falls. Where the layout is
  what tells a fall apart, falls happen beside the furniture: in ~20 % of falls the person
  lies down on a bed or couch and rolls off it onto the floor beside it (the same lying
  blob, moved sideways off the furniture), in ~45 % they fall along a bed or couch onto
  the floor 0.3-1.5 px beside it, otherwise the body centre moves 3-4 px along a room
  axis onto free floor (never onto a bed, couch or table), away from the others, and
  the body stays in view;
- leaning and other: 2-5 frame morphs labelled with the posture itself.

Walking and standing have the same blob; only motion tells them apart. The last
frames of a transition look like its end posture; only the recent past tells them
apart. People planned later keep their walking targets, wall spots and falls
clear of the people planned before them (10-12 px), and one piece of furniture
holds one person at a time. When someone gets up from a chair, bed or the floor,
a heat residual of their torso stays and fades (time constant 30-80 frames), and
the furniture box gets ``attribute_heat_residual: "yes"`` while it is visible
(>0.5 °C). A per-recording list of "forced" activities (cycling over fall, bed,
lean, kneel, bend, crouch, lower-other, other, sit; three per recording; a forced
fall happens 30-70 % into the recording and shortens the holds before it) makes
every class appear in the default dataset's training split; the rest is drawn at
random, so class frequencies are imbalanced (walking ~23 %, standing ~15 %, lying
~13 % each, transitions to a fall ~0.5 % of boxes).

Sensor. Temporal noise ~N(0, 0.25-0.35 °C) per pixel, fixed-pattern noise 0.15 °C,
a slow global drift, values clipped to the real 4-45 °C and quantized like the real
sensor (1/8 °C steps shown with one decimal). The frame index is the time axis
(steady ~6 Hz scene), but the recorded timestamps are bursty receive times: runs of 3-6 steps of ~165 ms, a gap
of ~560 ms (330-1400 ms; 2 % of cycles 1.5-2.6 s), then 2-4 frames ~37 ms apart
(and sometimes one 60-130 ms step); ``frame_seqs == timestamps``. Dropped packets:
in 2-13 % of the frames (never a keyframe) k of the four 576-pixel packets are lost
(k = 1 with p 0.7, 2: 0.12, 3: 0.08, 4: 0.10) and, as real receivers do, the packets
that arrived are packed at the start of the frame and the last 576*k pixels in raster
order hold -273.2 °C (see :mod:`thermal_action.data.packets`). Which packets are lost is
drawn with the frequencies of the real sample (packet 0: 0.42, 1: 0.16, 2: 0.16, 3: 0.26;
the short last packet always arrives). ``pack_dropped_packets=False`` writes the older
model instead: the data in place and only the tail lost.

Annotations. Keyframes are 6-12 frames apart, and with probability 0.85 a
transition between two regular keyframes gets its own keyframe (annotators look at
events). Person boxes are the union of the blob's components at 2.4 sigma plus an
annotator margin of 0-1 px per side and ±0.3 px jitter; with probability 0.15 an
unchanged person's box is carried forward from the previous keyframe, as
annotators do. ``object_id`` is the person's track id; objects and furniture get
the ids after the people. Whole recordings are held out for val (the last
``val_recordings``, i.e. the last room with the defaults).

``simulate_recording`` returns the same recording in memory with dense per-frame
ground truth (labels, tight boxes, body centres) for tests and evaluation code.

Where things are
================

- :mod:`.config`: :class:`SynthConfig`, what to generate;
- :mod:`.postures`: class ids, the posture table, the activity mix;
- :mod:`.room`: backgrounds, furniture and objects;
- :mod:`.timeline`: one person's per-frame pose (hold, walk, morph);
- :mod:`.people`: the planner that scripts each person's activities;
- :mod:`.render`: bodies as heat blobs, and their tight boxes;
- :mod:`.sensor`: bursty timestamps, quantization, dropped-packet constants;
- :mod:`.recording`: :func:`simulate_recording`, one recording with dense ground truth;
- :mod:`.write`: :func:`generate_dataset`, the files on disk;
- :mod:`.day`: :func:`generate_day`, a long fall-free day of one resident, written in chunks.
"""
