"""The README stays an entry page, its commands are CI's, and its links lead somewhere.

The documentation site itself is built by ``.ci/run`` (``mkdocs build --strict``), which
checks every page, link, anchor and API docstring; these checks need no docs tools.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_readme_is_an_entry_page_under_300_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) < 300


def test_readme_first_two_commands_are_the_ones_ci_runs():
    setup_and_demo, tests = (block.strip() for block in _bash_blocks(README.read_text(encoding="utf-8"))[:2])
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert setup_and_demo in ci
    assert tests in ci


def test_readme_relative_links_name_existing_files():
    for target in LINK.findall(README.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        assert (ROOT / path).exists(), f"README links to {target}, which does not exist"


def test_every_docs_page_is_in_the_site_nav():
    def pages(nav) -> set[str]:
        found = set()
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found |= pages(value) if isinstance(value, list) else {value}
        return found

    # mkdocs.yml has no custom YAML tags, so the safe loader reads it.
    nav = pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk | {"index.md"} == nav  # index.md is the README (scripts/docs_hooks.py)
