"""Griffe extension (``mkdocs.yml``): the docstrings' reST bits made readable on the site.

The docstrings are Google style with Sphinx cross-reference roles (``:func:`name```,
``:class:`~pkg.Name```) and ``::`` before literal blocks, which Markdown shows verbatim.
Here a role becomes its name as code, linked to the object's page where the site has
one (an optional reference: a target the site does not render stays plain code, no
warning), and ``::`` becomes ``:`` (the indented block after it is already a code block).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|data|mod|obj|exc):`(~?)([\w.]+)(?:\(\))?`")
_LITERAL_MARK_ALONE = re.compile(r"(?m)^[ \t]*::[ \t]*$")
_LITERAL_MARK_END = re.compile(r"(?m)(\S)::[ \t]*$")


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as seen from ``obj`` (best effort: unknown names stay)."""
    if name.startswith("thermal_action."):
        return name
    scopes = [obj] + list(_parents(obj))
    first = name.split(".", 1)[0]
    for scope in scopes:
        members = getattr(scope, "members", {})
        if first in members:
            return f"{scope.path}.{name}"
        imports = getattr(scope, "imports", {})
        if first in imports:
            rest = name[len(first):]
            return imports[first] + rest
    return name


def _parents(obj: griffe.Object):
    parent = obj.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(m: re.Match[str]) -> str:
        tilde, name = m.group(1), m.group(2)
        shown = name.rsplit(".", 1)[-1] if tilde else name
        return f'<autoref optional identifier="{_target(obj, name)}"><code>{shown}</code></autoref>'

    text = _ROLE.sub(role, text)
    text = _LITERAL_MARK_ALONE.sub("", text)
    return _LITERAL_MARK_END.sub(r"\1:", text)


class SphinxRolesToMarkdown(griffe.Extension):
    """Rewrites every docstring of the loaded package once, when an object is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value)
