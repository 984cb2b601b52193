"""MkDocs hook (``mkdocs.yml``: ``hooks``): the README is the site's home page.

The README links the pages as ``docs/<page>.md`` so that they work on GitHub; the site's
home page is the same text with those links made relative to ``docs/``. Keeping one
source means the entry page on GitHub and on the site cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

_DOCS_LINK = re.compile(r"\]\(docs/")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Adds ``index.md``, made from the README beside ``mkdocs.yml``."""
    readme = Path(config.config_file_path).parent / "README.md"
    text = _DOCS_LINK.sub("](", readme.read_text(encoding="utf-8"))
    files.append(File.generated(config, "index.md", content=text))
    return files
