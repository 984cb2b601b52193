"""``thermal-action label``: a local labelling page with the model's help.

Where things are: :mod:`.model` (labels of a recording, edits, actions that hold along a
track), :mod:`.journal` (append-only journal, atomic writes), :mod:`.preannotate` (keyframes,
the built-in detector and tracker, the model's scores), :mod:`.export` (raw JSONL, COCO,
``rooms.json``), :mod:`.session` (one labelling session over a folder of recordings) and
:mod:`.server` (the web page and its API). Only the CLI imports this package.
"""
