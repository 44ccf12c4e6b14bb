"""Plain text and Markdown documents."""

from __future__ import annotations

import re

from kbase.errors import InputError
from kbase.hashing import content_hash
from kbase.sources.base import SourceDocument

#: Titles taken from the text are cut to this many characters.
TITLE_MAX_CHARS = 200

_ATX_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)


def read_text(name: str, source: str, text: str, *, markdown: bool) -> SourceDocument:
    """One document holding ``text`` as is, its id the content hash.

    The title is the first Markdown heading (for Markdown) or else the first non-blank line,
    cut to :data:`TITLE_MAX_CHARS` characters. Text that is only whitespace is an error.
    """
    if not text.strip():
        raise InputError(f"{name} has no text: give a file with some text in it")
    return SourceDocument(
        doc_id=content_hash(text),
        text=text,
        source=source,
        title=markdown_title(text) if markdown else first_line(text),
    )


def markdown_title(text: str) -> str | None:
    """The first ATX (``# Title``) or setext (``Title`` over ``===``) heading, else the first line.

    A leading YAML front matter block (between ``---`` lines) is not searched.
    """
    front_matter = _FRONT_MATTER.match(text)
    body = text[front_matter.end() :] if front_matter else text
    lines = body.splitlines()
    for index, line in enumerate(lines):
        heading = _ATX_HEADING.match(line)
        if heading:
            return _cut(heading.group(1))
        is_paragraph_line = line.strip() and not line.lstrip().startswith(("-", "*", ">", "|"))
        if (
            is_paragraph_line
            and index + 1 < len(lines)
            and _SETEXT_UNDERLINE.match(lines[index + 1])
        ):
            return _cut(line)
    return first_line(body) or first_line(text)


def first_line(text: str) -> str | None:
    """The first non-blank line of ``text``, trimmed and cut, or ``None``."""
    for line in text.splitlines():
        if line.strip():
            return _cut(line)
    return None


def _cut(line: str) -> str:
    line = " ".join(line.split())
    if len(line) > TITLE_MAX_CHARS:
        return line[: TITLE_MAX_CHARS - 1].rstrip() + "…"
    return line
