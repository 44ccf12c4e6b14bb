"""Reading the sources of a command: files, folders, URLs and standard input, each
typed and parsed by the module of its kind (see :mod:`kbase.sources`)."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import BinaryIO

from kbase.errors import InputError
from kbase.hashing import content_hash
from kbase.sources.base import DEFAULT_MAX_BYTES, SourceDocument
from kbase.sources.feeds import read_feed, refuse_entity_declarations
from kbase.sources.fetch import fetch, is_url
from kbase.sources.fields import check_batch, check_id, check_parsed_size, storable
from kbase.sources.files import check_bytes, decode_utf8, read_file, read_stream, walk_folder
from kbase.sources.html import decode_html, extract_page, published_date
from kbase.sources.jsonl import read_jsonl
from kbase.sources.kinds import Kind, kind_from_extension, kind_of_download, sniff_kind
from kbase.sources.messages import plural, shown_url, without_credentials
from kbase.sources.text import read_text

log = logging.getLogger("kbase")

STDIN_SPEC = "-"
_STDIN_NAME = "standard input"
_HTTP = re.compile(r"https?://", re.I)


def read_source(
    spec: str,
    *,
    doc_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 20.0,
    stdin: BinaryIO | None = None,
    skip_bad: bool = False,
    allow_private: bool | None = None,
) -> list[SourceDocument]:
    """All documents of one source, or an :class:`InputError` before any is returned.

    ``spec`` is a file path, a folder path (read recursively), an ``http(s)`` URL, or ``-``
    for standard input (``stdin``, else ``sys.stdin.buffer``). Files are typed by their
    extension, else by their content; downloads by Content-Type, else by content.

    ``doc_id`` replaces the id of the single document of a one-document source.
    ``max_bytes`` caps each file or download, and the characters of text it holds once
    parsed; ``timeout`` (seconds) bounds a download. Ids are at most
    :data:`MAX_ID_CHARS` characters without control characters; NUL characters are
    dropped from texts, titles and URLs (see :func:`kbase.sources.fields.storable`).
    With ``skip_bad``, bad JSONL lines and unreadable files in a folder are logged to the
    ``kbase`` logger and left out instead of failing the whole source. URLs that
    reach loopback or private addresses are refused unless ``allow_private`` (None:
    ``$KBASE_ALLOW_PRIVATE_URLS``; see :mod:`kbase.sources.fetch`).
    """
    if max_bytes < 1:
        raise InputError(f"--max-bytes must be a positive number of bytes, not {max_bytes}")
    if not spec.strip():
        raise InputError("no source given: give a file, a folder, an http(s) URL or - for stdin")
    if spec == STDIN_SPEC:
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = read_stream(_STDIN_NAME, stream, max_bytes)
        name = _STDIN_NAME
        kind = sniff_kind(data)
        documents = _parse(_STDIN_NAME, STDIN_SPEC, data, kind, max_bytes, skip_bad=skip_bad)
    elif _HTTP.match(spec) or (is_url(spec) and not os.path.lexists(spec)):
        name = shown_url(spec)
        documents = _read_url(
            spec,
            max_bytes=max_bytes,
            timeout=timeout,
            skip_bad=skip_bad,
            allow_private=allow_private,
        )
    elif os.path.isdir(spec):
        name = spec
        documents = _read_folder(spec, max_bytes=max_bytes, skip_bad=skip_bad)
    else:
        name = spec
        data = read_file(spec, max_bytes)
        kind = kind_from_extension(spec) or sniff_kind(data)
        documents = _parse(spec, spec, data, kind, max_bytes, skip_bad=skip_bad)
    if doc_id is not None:
        documents = [_with_id(name, documents, doc_id)]
    log.info("read %s from %s", plural(len(documents), "document"), name)
    return documents


def _read_url(
    url: str, *, max_bytes: int, timeout: float, skip_bad: bool, allow_private: bool | None
) -> list[SourceDocument]:
    download = fetch(url, max_bytes=max_bytes, timeout=timeout, allow_private=allow_private)
    name = shown_url(url)
    data = check_bytes(name, download.data, max_bytes)
    kind = kind_of_download(download.content_type, download.url, data)
    # Credentials in the URL are for fetching only: never stored with the documents.
    source, final_url = without_credentials(url), without_credentials(download.url)
    documents = _parse(
        name,
        source,
        data,
        kind,
        max_bytes,
        skip_bad=skip_bad,
        charset=download.charset,
        url=final_url,
    )
    if kind in (Kind.TEXT, Kind.MARKDOWN):
        documents = [dataclasses.replace(document, url=final_url) for document in documents]
    return documents


def _read_folder(folder: str, *, max_bytes: int, skip_bad: bool) -> list[SourceDocument]:
    paths = walk_folder(folder)
    if not paths:
        raise InputError(f"no feed, JSONL, text, Markdown or HTML files in {folder}")
    documents: list[SourceDocument] = []
    for path in paths:
        kind = kind_from_extension(path)
        if kind is None:  # walk_folder only gives known extensions
            continue
        try:
            data = read_file(path, max_bytes)
            documents.extend(_parse(path, path, data, kind, max_bytes, skip_bad=skip_bad))
        except InputError as exc:
            if not skip_bad:
                raise
            log.warning("skipping a bad file: %s", exc)
    if not documents:
        raise InputError(f"no readable documents in {folder}: fix the files reported above")
    return check_batch(documents)


def _parse(
    name: str,
    source: str,
    data: bytes,
    kind: Kind,
    max_chars: int,
    *,
    skip_bad: bool,
    charset: str | None = None,
    url: str | None = None,
) -> list[SourceDocument]:
    """The documents in ``data`` read as ``kind``, storable and holding at most
    ``max_chars`` characters of text; ``name`` is how messages call the input."""
    documents = _documents(name, source, data, kind, skip_bad=skip_bad, charset=charset, url=url)
    check_parsed_size(name, documents, max_chars)
    return [storable(name, document) for document in documents]


def _documents(
    name: str,
    source: str,
    data: bytes,
    kind: Kind,
    *,
    skip_bad: bool,
    charset: str | None,
    url: str | None,
) -> list[SourceDocument]:
    if kind is Kind.FEED:
        return read_feed(name, source, data, charset=charset)
    if kind is Kind.HTML:
        markup = decode_html(name, data, charset)
        refuse_entity_declarations(name, markup)
        page = extract_page(name, markup, url)
        document = SourceDocument(
            doc_id=content_hash(page.text),
            text=page.text,
            source=source,
            title=page.title,
            url=page.url,
            published=published_date(name, page.published_text),
        )
        return [document]
    text = decode_utf8(name, data)
    if kind is Kind.JSONL:
        return read_jsonl(name, source, text, skip_bad=skip_bad)
    return [read_text(name, source, text, markdown=kind is Kind.MARKDOWN)]


def _with_id(name: str, documents: list[SourceDocument], doc_id: str) -> SourceDocument:
    if not doc_id.strip():
        raise InputError("--id is empty: give a non-empty id")
    check_id("--id", doc_id.strip())
    if len(documents) != 1:
        raise InputError(f"--id needs a source with one document; {name} has {len(documents)}")
    return dataclasses.replace(documents[0], doc_id=doc_id.strip())


def read_sources(
    specs: Iterable[str],
    *,
    doc_id: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 20.0,
    stdin: BinaryIO | None = None,
    skip_bad: bool = False,
    allow_private: bool | None = None,
) -> list[SourceDocument]:
    """The documents of several sources read as one batch (one command), or an
    :class:`InputError` before any is returned.

    Each source is read by :func:`read_source` with these arguments; then an id that two
    sources give with different texts is an error, and one given with the same text is
    read once (:func:`~kbase.sources.fields.check_batch`).
    """
    documents: list[SourceDocument] = []
    for spec in specs:
        documents += read_source(
            spec,
            doc_id=doc_id,
            max_bytes=max_bytes,
            timeout=timeout,
            stdin=stdin,
            skip_bad=skip_bad,
            allow_private=allow_private,
        )
    return check_batch(documents)
