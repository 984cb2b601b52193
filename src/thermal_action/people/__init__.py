"""A built-in thermal person detector: warm blobs over a learned background.

``predict`` needs person boxes; a bare recording has none. People in an overhead
40x60 thermopile frame are compact blobs ~5-8 °C above a 16-19 °C room, so a
classical pipeline finds them well without training::

    frame (H, W) ──► °C, no-data mask (dropped packets put back in place, Kelvin input)
                   │
    background B ──┼──► excess E = frame - B - offset   (offset: global drift, a median)
    (per pixel)    │
                   ├──► foreground: E > max(k_grow * sigma, floor)   (sigma: robust noise)
                   │        minus hot objects (> 40 °C or > 12 °C over the room) + margin
                   ├──► cleanup (fill 1-px holes) -> 8-connected regions, split at saddles
                   │        between two people, cut where a cool non-person part joins
                   └──► keep regions that look like a person: size, peak well above the
                            noise, 3x3 peak >= 4 °C over the room (>= 2.5 °C for one
                            continuing a person seen in the last 2 s) -> boxes + scores

:class:`PersonDetector` keeps the state of one recording: the background (a low
percentile over a window of past frames, the pixels of detected people left out of
the update, so a person who lies still is never absorbed while static objects that
never pass as a person, a kettle or a warm chair, are) and the people seen in the
last frames (so someone who lies down and dims stays found).
:func:`detect_frame` is the stateless step for one frame and a given background.

Where things are: :mod:`.params` (:class:`DetectorParams`), :mod:`.results`
(:class:`Detections`, :class:`FrameResult`), :mod:`.image_ops` (dilation, pinhole fill,
3x3 means, percentile filter, :func:`segment_regions`), :mod:`.frame` (:func:`to_celsius`,
:func:`detect_frame`) and :mod:`.person_detector` (:class:`PersonDetector`).

Design choices and the numbers behind them are in :class:`DetectorParams`.
"""
