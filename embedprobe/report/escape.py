"""Escaping user-given names (corpora, models, tags, paths, errors) for Markdown and HTML reports.

A name such as ``<svg onload=alert(1)>`` must show as text, never become markup: :func:`md`
turns HTML's special characters into entities (read back as the same characters by every
Markdown renderer) and backslash-escapes the Markdown punctuation that could start emphasis,
links, code or a table cell. :func:`md_code` wraps a value in a code span that no backtick
in it can close. The HTML report uses :func:`html.escape` (``report.html._e``).

Example:
    >>> md("<svg onload=alert(1)>"), md("a|b_c"), md_code("x`y")
    ('&lt;svg onload=alert(1)&gt;', 'a\\\\|b\\\\_c', '``x`y``')
"""

from __future__ import annotations

import html
import re

_MD_PUNCT = re.compile(r"([\\`*_\[\]|~])")
_LINE_BREAKS = re.compile(r"[\r\n\t\v\f]+")


def md(value: object) -> str:
    """``value`` as inline Markdown text (also safe inside a table cell and a heading)."""
    text = _LINE_BREAKS.sub(" ", "" if value is None else str(value))
    return html.escape(_MD_PUNCT.sub(r"\\\1", text), quote=True)


def md_code(value: object) -> str:
    """``value`` as a Markdown code span (shown verbatim; HTML inside a code span is never markup)."""
    text = _LINE_BREAKS.sub(" ", "" if value is None else str(value)).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
