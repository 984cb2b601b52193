"""Helpers shared by the tests, one importable package (``pythonpath = ["tests"]`` in
pyproject.toml puts it on the path in every import mode):

- :mod:`.configs`: the tiny model and trainer settings every test trains or predicts with;
- :mod:`.infer`: a tiny checkpoint in the training format and tiny recordings;
- :mod:`.serve`: the service's tests: frames with people, polling, serve settings;
- :mod:`.browser`: headless Chromium for the dashboard tests;
- :mod:`.people_reference`: the person detector's plain operations, the reference of the fast ones.
"""
