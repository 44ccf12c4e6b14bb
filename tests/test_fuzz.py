"""Bad input, fuzzed: sources, dates, ids, the CLI's arguments, and model answers.

Every source parser is driven through ``read_source`` with random and mutated
bytes; the rule is "documents or an InputError, nothing else", and documents must
be storable (ids and texts that are non-empty, stripped, valid UTF-8). XML
entity declarations and external references are never expanded or fetched, and
links inside a feed are never followed. The CLI is fuzzed with argument lists
drawn from its own vocabulary plus junk, through the real entry point: no
traceback, ever; a failure is one ``Error: ...`` line and a non-zero exit.
Model-side faults (garbage, empty, truncated answers, timeouts, a misbehaving
OpenAI-compatible server) must leave nothing half-stored.

Example tests for each parser live in tests/test_sources.py; here the inputs are
generated. Each test bounds its examples and prints how many inputs it ran. The
source tests of sections 1, 3 and 9 (hostile input) run ``$KBASE_FUZZ_EXAMPLES``
examples each when it is set: the soak mode (docs/reliability.md).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from kbase.config import Settings
from kbase.embed.fake import HashingEmbedder
from kbase.errors import InputError, ModelUnavailable
from kbase.kb import KnowledgeBase
from kbase.llm import BACKENDS, BackendEntry
from kbase.llm.base import LLMBackend, LLMRequest, LLMResponse
from kbase.llm.fake import ScriptedLLM, world, world_llm
from kbase.ops.verify import verify_index
from kbase.sources import MAX_ID_CHARS, SourceDocument, read_source
from kbase.sources.dates import from_struct_time, parse_date
from kbase.sources.fields import id_problem
from kbase.store.models import Chunk, Document, Embedding, Fact, LLMRecord
from tests.crashkit import run_cli
from tests.helpers import local_server, news, no_proxies
from tests.test_hostile_sources import chunking_before_issue_19

DATA = Path(__file__).parent / "data" / "sources"
EXTENSIONS = ("", ".xml", ".rss", ".atom", ".rdf", ".jsonl", ".txt", ".md", ".html")
#: Inputs run per test, printed at the end of each (pytest -s shows them).
RAN: Counter[str] = Counter()
BASE = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def fuzz(examples: int) -> settings:
    """Bounded examples, no deadline (two shared cores), no example database."""
    return settings(parent=BASE, max_examples=examples)


#: The soak mode: KBASE_FUZZ_EXAMPLES=N runs N examples in each hostile-source test.
SOAK_EXAMPLES = int(os.environ.get("KBASE_FUZZ_EXAMPLES") or 0)


def hostile(examples: int) -> settings:
    """Like :func:`fuzz`, with ``$KBASE_FUZZ_EXAMPLES`` examples in the soak mode."""
    return fuzz(SOAK_EXAMPLES or examples)


def ran(name: str, count: int = 1) -> None:
    RAN[name] += count


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Iterator[None]:
    name = request.node.name
    RAN.pop(name, None)
    yield
    print(f"fuzz[{name}]: {RAN[name]} inputs")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by the examples of a test (hypothesis runs many per test)."""
    return tmp_path_factory.mktemp("fuzz")


# -- what every outcome of read_source must look like ------------------------------------
def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_documents(documents: list[SourceDocument]) -> None:
    assert isinstance(documents, list) and documents
    ids = [d.doc_id for d in documents]
    assert len(set(ids)) == len(ids), f"duplicate ids {ids}"
    for d in documents:
        assert isinstance(d, SourceDocument)
        assert d.doc_id and d.doc_id == d.doc_id.strip(), repr(d.doc_id)
        assert d.text.strip(), repr(d.text)
        assert d.published is None or (
            isinstance(d.published, datetime) and d.published.tzinfo is None
        )
        for value in (d.doc_id, d.text, d.title or "", d.url or ""):
            assert storable(value), f"not storable as UTF-8: {value[:80]!r}"
            assert "\x00" not in value, f"NUL, which PostgreSQL refuses: {value[:80]!r}"
        assert len(d.doc_id) <= MAX_ID_CHARS, len(d.doc_id)
        assert not any(unicodedata.category(c) == "Cc" for c in d.doc_id), repr(d.doc_id)


def outcome(read: Callable[[], list[SourceDocument]]) -> list[SourceDocument] | InputError:
    """Documents (checked) or the InputError (one line); anything else fails the test."""
    try:
        documents = read()
    except InputError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        assert "\x1b" not in message and "\x00" not in message, repr(message)
        return exc
    check_documents(documents)
    return documents


# -- inputs ------------------------------------------------------------------------------
RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Fuzz</title>
<item><guid>a-1</guid><title>First &amp; best</title><link>https://n.example/a-1</link>
<pubDate>Mon, 08 Jan 2024 09:00:00 GMT</pubDate>
<description>&lt;p&gt;The CEO of Acme is Bob.&lt;/p&gt;</description></item>
<item><guid>a-2</guid><title>Second</title><pubDate>2024-05-02T10:00:00+02:00</pubDate>
<description><![CDATA[<b>The CEO</b> of Acme is Alice.]]></description></item>
</channel></rss>"""
ATOM = b"""<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>F</title><entry><id>tag:x,2024:1</id><title type="html">T &lt;i&gt;1&lt;/i&gt;</title>
<updated>2024-02-03T04:05:06Z</updated><link href="https://n.example/1"/>
<content type="html">&lt;p&gt;Atom body one.&lt;/p&gt;</content></entry></feed>"""
RDF = b"""<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://n.example/"><title>R</title></channel>
<item rdf:about="https://n.example/r1"><title>R1</title><link>https://n.example/r1</link>
<description>RDF item text.</description><dc:date>2024-03-01</dc:date></item></rdf:RDF>"""
JSONL = (
    b'{"id": "j1", "text": "The CFO of Acme is Carol.", "published": "2024-01-02"}\n'
    b'{"id": 2, "text": "Line two.", "title": "T", "url": "https://n.example/2"}\n'
)
HTML = b"""<!DOCTYPE html><html><head><title>Page</title>
<meta property="article:published_time" content="2024-04-05T06:07:08Z"></head>
<body><nav>menu</nav><article><p>The mayor of Leeds opened the bridge on Tuesday.</p>
<p>Crowds came to see it.</p></article><footer>c</footer></body></html>"""
MARKDOWN = b"---\ntitle: x\n---\n# Heading\n\nSome *text* here.\n"
SEEDS = [RSS, ATOM, RDF, JSONL, HTML, MARKDOWN, b"Plain text, one line.\n"]
SEEDS += [p.read_bytes() for p in sorted(DATA.glob("*")) if p.is_file()]
TOKENS = [
    b"<!DOCTYPE rss [",
    b"<!ENTITY a 'b'>",
    b"]>",
    b"&a;",
    b"&#xD800;",
    b"&#0;",
    b"&#x1F600;",
    b"<![CDATA[",
    b"]]>",
    b"</item>",
    b"<item>",
    b"<entry>",
    b"<guid></guid>",
    b"<pubDate>Tue, 31 Feb 2024 25:61:00 +9999</pubDate>",
    b"<pubDate>9999-12-31T23:59:59Z</pubDate>",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b' encoding="latin-1"',
    b' encoding="bogus-enc"',
    b' encoding="utf-16"',
    b' encoding="utf-7"',
    b' encoding="cp500"',
    b' encoding="base64"',
    b"+ADwAIQ-DOCTYPE rss +AFs-+ADwAIQ-ENTITY a +ACI-LOL+ACI-+AD4-+AF0-+AD4-",
    b"\x00<\x00?\x00x\x00m\x00l",
    b"\x1b[31m",
    b"x" * 600,
    b"\r\n",
    b"{",
    b"}",
    b'"id": null,',
    b'{"id": "x", "text": ""}\n',
    b"[" * 64,
    b"%PDF-",
    b"<html>",
    b"<script>",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed input with up to six random edits: cuts, deletions, insertions of bytes or
    of tokens that matter to one of the parsers, duplications, byte flips."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["cut", "delete", "insert", "token", "repeat", "flip"]))
        if op == "cut":
            del data[at:]
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 200))] * draw(st.integers(1, 5))
        elif at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


ANY_BYTES = st.one_of(
    mutated(),
    st.binary(max_size=512),
    st.text(max_size=300).map(lambda t: t.encode("utf-8")),
    st.sampled_from([b"", b" ", b"\n\n", b"\xef\xbb\xbf", b"\x00", b"{}", b"<rss/>"]),
)


# -- 1. every source parser on random and mutated bytes ----------------------------------
@hostile(300)
@given(data=ANY_BYTES, extension=st.sampled_from(EXTENSIONS), skip_bad=st.booleans())
def test_any_bytes_as_a_file_or_stdin_give_documents_or_an_input_error(
    scratch: Path, tally: None, data: bytes, extension: str, skip_bad: bool
) -> None:
    path = scratch / f"input{extension}"
    path.write_bytes(data)
    from_file = outcome(lambda: read_source(str(path), skip_bad=skip_bad))
    from_stdin = outcome(lambda: read_source("-", stdin=io.BytesIO(data), skip_bad=skip_bad))
    ran("test_any_bytes_as_a_file_or_stdin_give_documents_or_an_input_error", 2)
    if not data.strip():
        assert isinstance(from_file, InputError) and isinstance(from_stdin, InputError)
    if extension == "":  # no extension: typed by content, exactly like stdin
        assert type(from_file) is type(from_stdin)


@fuzz(40)
@given(
    entry_bytes=st.integers(1, 400_000),
    limit=st.integers(1, 500_000),
    kind=st.sampled_from(["rss", "jsonl", "txt"]),
)
@example(entry_bytes=1, limit=2, kind="txt")  # the title, a copy of the text, counted twice
@example(entry_bytes=300, limit=301, kind="txt")
def test_max_bytes_bounds_every_input_however_big_one_entry_is(
    scratch: Path, tally: None, entry_bytes: int, limit: int, kind: str
) -> None:
    body = ("word " * (entry_bytes // 5 + 1))[:entry_bytes]
    if kind == "rss":
        data = (
            f'<rss version="2.0"><channel><item><guid>big</guid><description>{body}'
            "</description></item></channel></rss>"
        ).encode()
    elif kind == "jsonl":
        data = json.dumps({"id": "big", "text": body}).encode() + b"\n"
    else:
        data = body.encode() + b"."
    path = scratch / f"big.{kind}"
    path.write_bytes(data)
    for read in (
        lambda: read_source(str(path), max_bytes=limit),
        lambda: read_source("-", stdin=io.BytesIO(data), max_bytes=limit),
    ):
        result = outcome(read)
        ran("test_max_bytes_bounds_every_input_however_big_one_entry_is")
        if len(data) > limit:
            assert isinstance(result, InputError) and "--max-bytes" in str(result)
        else:
            assert not isinstance(result, InputError), result
            assert len(result) == 1 and len(result[0].text) <= len(data)


def rss_of(items: list[str]) -> bytes:
    return (
        '<rss version="2.0"><channel><title>Many</title>' + "".join(items) + "</channel></rss>"
    ).encode()


def test_three_thousand_entries_all_parse(scratch: Path, tally: None) -> None:
    items = [
        f"<item><guid>n-{i}</guid><title>Item {i}</title>"
        f"<pubDate>Mon, 08 Jan 2024 09:{i % 60:02d}:00 GMT</pubDate>"
        f"<description>The value of item {i} is {i * 7}.</description></item>"
        for i in range(3000)
    ]
    lines = [json.dumps({"id": f"n-{i}", "text": f"Value {i}."}) for i in range(3000)]
    cases = {
        "many.rss": rss_of(items),
        "many.jsonl": "\n".join(lines).encode(),
    }
    for name, data in cases.items():
        (scratch / name).write_bytes(data)
        documents = read_source(str(scratch / name))
        check_documents(documents)
        ran("test_three_thousand_entries_all_parse")
        assert [d.doc_id for d in documents] == [f"n-{i}" for i in range(3000)]


# -- 2. entries: duplicate ids, missing and future dates, feed flavours -------------------
ENTRY_DATES = st.one_of(
    st.none(),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.none()
    ),
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    ),
)
ENTRIES = st.lists(
    st.tuples(
        st.sampled_from(["", "a", "b", "c", " a ", "https://n.example/x", "id\u00e9"]),
        st.text(alphabet="abcdef XYZ.", min_size=0, max_size=40),
        ENTRY_DATES,
    ),
    min_size=1,
    max_size=12,
)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def feed_bytes(flavour: str, entries: list[tuple[str, str, datetime | None]]) -> bytes:
    parts = []
    for doc_id, text, when in entries:
        if flavour == "rss":
            date = (
                f"<pubDate>{format_datetime(when)}</pubDate>" if when and when.year > 1900 else ""
            )
            if when and when.year <= 1900:
                date = f"<pubDate>{when.isoformat()}</pubDate>"
            parts.append(
                f"<item><guid>{_xml(doc_id)}</guid><description>{_xml(text)}</description>"
                f"{date}</item>"
            )
        else:
            date = f"<updated>{when.isoformat()}</updated>" if when else ""
            parts.append(
                f"<entry><id>{_xml(doc_id)}</id><title>t</title>"
                f"<content>{_xml(text)}</content>{date}</entry>"
            )
    if flavour == "rss":
        return rss_of(parts)
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>F</title>" + "".join(parts) + "</feed>"
    ).encode()


def naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


@fuzz(80)
@given(entries=ENTRIES, flavour=st.sampled_from(["rss", "atom"]))
def test_feed_entries_keep_the_first_of_each_id_and_their_dates_as_given(
    scratch: Path, tally: None, entries: list[tuple[str, str, datetime | None]], flavour: str
) -> None:
    path = scratch / f"entries.{flavour}"
    path.write_bytes(feed_bytes(flavour, entries))
    result = outcome(lambda: read_source(str(path)))
    ran("test_feed_entries_keep_the_first_of_each_id_and_their_dates_as_given")
    with_text = [e for e in entries if e[1].strip()]
    if not with_text:
        assert isinstance(result, InputError)
        return
    assert not isinstance(result, InputError), result
    by_id: dict[str, SourceDocument] = {d.doc_id: d for d in result}
    assert len(by_id) == len(result)
    first: dict[str, tuple[str, datetime | None]] = {}
    for doc_id, text, when in with_text:
        key = doc_id.strip()
        if key:
            first.setdefault(key, (text, when))
    for key, (text, when) in first.items():
        assert key in by_id, (key, sorted(by_id))
        assert by_id[key].text == " ".join(text.split()) or by_id[key].text == text.strip()
        if when is not None and by_id[key].published is not None:
            # Feeds carry seconds at best; far-future dates are kept, never clamped.
            assert by_id[key].published == naive_utc(when).replace(microsecond=0)


JSONL_LINES = st.lists(
    st.one_of(
        st.builds(
            lambda i, t, p: {"id": i, "text": t, **({"published": p} if p else {})},
            st.one_of(st.sampled_from(["a", "b", " c ", "d"]), st.integers(-5, 5)),
            st.text(alphabet="abc XY.", min_size=1, max_size=20).filter(str.strip),
            st.sampled_from([None, "2024-01-02", "2999-12-31T23:00:00Z", "Tue, 04 Jun 2024"]),
        ).map(json.dumps),
        st.sampled_from(
            [
                "not json",
                "[1, 2]",
                '"text"',
                '{"text": "no id"}',
                '{"id": "x"}',
                '{"id": "x", "text": ""}',
                '{"id": true, "text": "t"}',
                '{"id": 1.5, "text": "t"}',
                '{"id": "x", "text": 3}',
                '{"id": "x", "text": "t", "published": "soon"}',
                '{"id": "x", "text": "t", "title": ["t"]}',
                '{"id": "  ", "text": "t"}',
                "{" * 3000,
                "",
                "   ",
            ]
        ),
    ),
    min_size=1,
    max_size=15,
)


def jsonl_line_problem(line: str, seen: dict[str, int], number: int) -> str | None:
    """Why a JSONL line is bad (None if good), by the documented rules."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return "json"
    if not isinstance(record, dict):
        return "type"
    doc_id = record.get("id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, str | int) or not str(doc_id).strip():
        return "id"
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        return "text"
    if not isinstance(record.get("title", ""), str):
        return "title"
    published = record.get("published")
    if published and parse_date(published) is None:
        return "date"
    if str(doc_id).strip() in seen:
        return "duplicate"
    return None


@fuzz(120)
@given(lines=JSONL_LINES, skip_bad=st.booleans())
def test_jsonl_bad_lines_are_named_or_skipped(
    scratch: Path, tally: None, lines: list[str], skip_bad: bool
) -> None:
    path = scratch / "lines.jsonl"
    path.write_text("\n".join(lines))
    result = outcome(lambda: read_source(str(path), skip_bad=skip_bad))
    ran("test_jsonl_bad_lines_are_named_or_skipped")
    seen: dict[str, int] = {}
    good, first_bad = [], None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problem = jsonl_line_problem(line, seen, number)
        if problem is None:
            doc_id = str(json.loads(line)["id"]).strip()
            seen[doc_id] = number
            good.append(doc_id)
        elif first_bad is None:
            first_bad = number
    if skip_bad or first_bad is None:
        if good:
            assert [d.doc_id for d in result] == good  # type: ignore[union-attr]
        else:
            assert isinstance(result, InputError)
    else:
        assert isinstance(result, InputError)
        assert str(result).startswith(f"{path}:{first_bad}:"), (str(result), first_bad)


# -- 3. XML entities, external references and links are never expanded or fetched --------
class CountingHandler(BaseHTTPRequestHandler):
    """Counts every request; answers with a DTD that would define entities."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b'<!ENTITY ext "FETCHED-FROM-THE-NETWORK">'
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def listener() -> Iterator[str]:
    """An http server on 127.0.0.1 that records whether anything was fetched."""
    with local_server(CountingHandler) as url:
        yield url


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "passwd"
    path.write_text("SECRET-LOCAL-FILE-CONTENT root:x:0:0")
    return path


@st.composite
def hostile_xml(draw: st.DrawFn, url: str, secret: Path) -> tuple[bytes, bool]:
    """A feed or page whose DOCTYPE declares entities (bombs, external files, URLs) or
    names an external DTD, in varied spelling; returns it and whether it declares any."""
    doctype = draw(st.sampled_from(["DOCTYPE", "doctype", "DocType"]))
    entity = draw(st.sampled_from(["ENTITY", "entity", "Entity"]))
    space = draw(st.sampled_from([" ", "  ", "\n", "\t"]))
    targets = [f"file://{secret}", f"{url}/entity", str(secret), f"{url}/dtd"]
    declarations = draw(
        st.lists(
            st.sampled_from(
                [
                    f"<!{entity}{space}a{space}'LOL'>",
                    f'<!{entity} b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">',
                    f'<!{entity} c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">',
                    f'<!{entity} x SYSTEM "{draw(st.sampled_from(targets))}">',
                    f'<!{entity} % p SYSTEM "{draw(st.sampled_from(targets))}"> %p;',
                    f'<!{entity} y PUBLIC "-//X//EN" "{draw(st.sampled_from(targets))}">',
                ]
            ),
            max_size=4,
        )
    )
    external = draw(st.sampled_from(["", f' SYSTEM "{url}/dtd"', f' SYSTEM "file://{secret}"']))
    root = draw(st.sampled_from(["rss", "feed", "rdf:RDF", "html"]))
    subset = f"{space}[{''.join(declarations)}]" if declarations else ""
    head = draw(st.sampled_from(["", '<?xml version="1.0"?>\n', "\ufeff", "<!-- c -->\n"]))
    refs = "&a; &b; &c; &x; &y; &ext;"
    bodies = {
        "rss": f'<rss version="2.0"><channel><item><guid>g</guid><link>{url}/link</link>'
        f"<description>start {refs} end</description></item></channel></rss>",
        "feed": f'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>g</id><title>t</title>'
        f'<link href="file://{secret}"/><content src="file://{secret}"/>'
        f"<summary>start {refs} end</summary></entry></feed>",
        "rdf:RDF": '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/"><item rdf:about="https://n.example/r">'
        f"<title>t</title><description>start {refs} end</description></item></rdf:RDF>",
        "html": f"<html><body><p>A page of text, start {refs} end.</p>"
        f'<img src="{url}/img"><iframe src="file://{secret}"></iframe></body></html>',
    }
    text = f"{head}<!{doctype} {root}{external}{subset}>\n{bodies[root]}"
    return text.encode("utf-8"), bool(declarations)


@hostile(120)
@given(data=st.data(), extension=st.sampled_from(["", ".xml", ".atom", ".rdf", ".html"]))
def test_entity_declarations_and_external_references_are_never_expanded_or_fetched(
    scratch: Path,
    tally: None,
    listener: str,
    secret: Path,
    data: st.DataObject,
    extension: str,
) -> None:
    raw, declares = data.draw(hostile_xml(listener, secret))
    CountingHandler.seen.clear()
    path = scratch / f"hostile{extension}"
    path.write_bytes(raw)
    result = outcome(lambda: read_source(str(path)))
    ran("test_entity_declarations_and_external_references_are_never_expanded_or_fetched")
    assert CountingHandler.seen == []
    if declares:
        assert isinstance(result, InputError) and "entities" in str(result)
    if not isinstance(result, InputError):
        for d in result:
            assert "SECRET-LOCAL-FILE" not in d.text + (d.title or "")
            assert "FETCHED-FROM" not in d.text and "LOLLOL" not in d.text


@fuzz(60)
@given(
    scheme=st.one_of(
        st.sampled_from(["file", "FILE", "ftp", "data", "gopher", "javascript", "jar", "smb"]),
        st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True),
    ),
    slashes=st.sampled_from(["://", ":", ":///", "://localhost"]),
)
def test_only_http_and_https_urls_are_read(
    tally: None, secret: Path, scheme: str, slashes: str
) -> None:
    assume(scheme.lower() not in ("http", "https"))
    spec = f"{scheme}{slashes}{secret}"
    assume(not os.path.lexists(spec))
    result = outcome(lambda: read_source(spec))
    ran("test_only_http_and_https_urls_are_read")
    assert isinstance(result, InputError), spec


# -- 4. folders: random trees with symbolic links, loops included ------------------------
TREE_NAMES = ("a", "b", "c")


@st.composite
def trees(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    """Steps that build a folder: ("dir", path, ""), ("file", path, text) or
    ("link", path, target) with targets that loop back, point sideways or nowhere."""
    dirs = ["."]
    steps: list[tuple[str, str, str]] = []
    for number in range(draw(st.integers(1, 14))):
        parent = draw(st.sampled_from(dirs))
        name = draw(st.sampled_from(TREE_NAMES)) + str(number)
        path = os.path.normpath(os.path.join(parent, name))
        kind = draw(st.sampled_from(["dir", "file", "file", "link", "link"]))
        if kind == "dir":
            dirs.append(path)
            steps.append(("dir", path, ""))
        elif kind == "file":
            extension = draw(st.sampled_from([".txt", ".md", ".bin"]))
            steps.append(("file", path + extension, f"Story {number} from {path}."))
        else:
            extension = draw(st.sampled_from(["", ".txt", ".md"]))
            target = draw(
                st.sampled_from([".", "..", parent, *dirs, *(s[1] for s in steps), "gone"])
            )
            steps.append(("link", path + extension, target))
    return steps


def build_tree(root: Path, steps: list[tuple[str, str, str]]) -> set[str]:
    """Make the tree; returns the texts a reader should find: every regular file reached
    by a name with a known extension (its own, or a link's), once."""
    for kind, rel, arg in steps:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            path.mkdir(exist_ok=True)
        elif kind == "file":
            path.write_text(arg)
        else:
            with contextlib.suppress(FileExistsError):
                path.symlink_to(root / arg)
    found: dict[str, str] = {}
    for folder, subfolders, files in os.walk(root):
        for name in files + subfolders:
            path = Path(folder) / name
            if path.suffix in (".txt", ".md") and path.is_file():
                found[os.path.realpath(path)] = path.read_text()
    return set(found.values())


@fuzz(80)
@given(steps=trees())
def test_folders_with_link_loops_read_each_file_once_and_end(
    tally: None, steps: list[tuple[str, str, str]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "root"
        root.mkdir()
        texts = build_tree(root, steps)
        started = time.perf_counter()
        result = outcome(lambda: read_source(str(root)))
        assert time.perf_counter() - started < 10
        ran("test_folders_with_link_loops_read_each_file_once_and_end")
        if not texts:
            assert isinstance(result, InputError)
            return
        assert not isinstance(result, InputError), result
        read = [d.text for d in result]
        assert sorted(read) == sorted(texts), "each file exactly once"


# -- 5. dates and ids --------------------------------------------------------------------
@fuzz(300)
@given(text=st.one_of(st.text(max_size=60), st.from_regex(r"[0-9TZ:+\-. ,a-zA-Z]{0,40}")))
def test_the_date_parser_never_raises_and_gives_naive_dates(tally: None, text: str) -> None:
    ran("test_the_date_parser_never_raises_and_gives_naive_dates")
    parsed = parse_date(text)
    assert parsed is None or (isinstance(parsed, datetime) and parsed.tzinfo is None)


OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


@fuzz(300)
@given(
    when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zone=st.one_of(st.none(), OFFSETS),
    form=st.sampled_from(["iso", "iso-space", "iso-lower", "z", "rfc", "date"]),
)
def test_dates_in_every_accepted_form_read_back_as_naive_utc(
    tally: None, when: datetime, zone: timezone | None, form: str
) -> None:
    when = when.replace(microsecond=0, tzinfo=zone)
    expected = naive_utc(when)
    if form == "iso":
        text = when.isoformat()
    elif form == "iso-space":
        text = when.isoformat(sep=" ")
    elif form == "iso-lower":
        text = when.isoformat().lower()
    elif form == "z":
        text = when.replace(tzinfo=None).isoformat() + "Z"
        expected = when.replace(tzinfo=None)
    elif form == "rfc":
        assume(when.year >= 1900)
        text = format_datetime(when if zone else when.replace(tzinfo=UTC))
    else:
        text = when.date().isoformat()
        expected = datetime.combine(when.date(), datetime.min.time())
    ran("test_dates_in_every_accepted_form_read_back_as_naive_utc")
    assert parse_date(text) == expected, text


@fuzz(200)
@given(
    value=st.one_of(
        st.tuples(*[st.integers(-(2**31), 2**31)] * 9),
        st.tuples(*[st.integers(0, 70)] * 9),
        st.none(),
    )
)
def test_struct_times_from_feeds_never_raise(tally: None, value: Any) -> None:
    ran("test_struct_times_from_feeds_never_raise")
    result = from_struct_time(time.struct_time(value) if value is not None else None)
    assert result is None or result.tzinfo is None


ONE_ITEM = (
    b'<rss version="2.0"><channel><item><guid>g</guid>'
    b"<description>One.</description></item></channel></rss>"
)


@fuzz(100)
@given(given_id=st.text(max_size=40), extension=st.sampled_from([".txt", ".md", ".xml"]))
def test_a_given_id_is_stripped_and_an_empty_one_refused(
    scratch: Path, tally: None, given_id: str, extension: str
) -> None:
    path = scratch / f"one{extension}"
    path.write_bytes(ONE_ITEM if extension == ".xml" else b"One story.")
    result = outcome(lambda: read_source(str(path), doc_id=given_id))
    ran("test_a_given_id_is_stripped_and_an_empty_one_refused")
    if not given_id.strip() or id_problem(given_id.strip()):
        assert isinstance(result, InputError) and "--id" in str(result)
    else:
        assert not isinstance(result, InputError), result
        assert [d.doc_id for d in result] == [given_id.strip()]


# -- 6. the CLI's argument handling --------------------------------------------------------
@dataclass
class CliWorld:
    kb: Path
    files: dict[str, str]


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory: pytest.TempPathFactory) -> CliWorld:
    """A fake-backed knowledge base with a few documents, and files to feed the CLI."""
    root = tmp_path_factory.mktemp("cli")
    kb = root / "kb"
    KnowledgeBase.open(kb, settings=Settings(embedder="fake", llm="fake")).close()
    files = {
        "feed": root / "news.xml",
        "jsonl": root / "docs.jsonl",
        "bad-jsonl": root / "bad.jsonl",
        "binary": root / "photo.txt",
        "empty": root / "empty.md",
        "folder": root / "folder",
        "examples": root / "examples.jsonl",
        "bad-examples": root / "bad-examples.jsonl",
        "deep-examples": root / "deep-examples.jsonl",
        "surrogate-jsonl": root / "surrogate.jsonl",
    }
    files["feed"].write_bytes(RSS)
    files["jsonl"].write_bytes(JSONL)
    files["bad-jsonl"].write_text('{"id": "ok", "text": "Fine."}\nnot json\n')
    files["binary"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    files["empty"].write_text("  \n")
    files["folder"].mkdir()
    (files["folder"] / "story.md").write_text("# Story\n\nThe CTO of Acme is Erin.\n")
    (files["folder"] / "loop").symlink_to(files["folder"])
    files["examples"].write_text(
        json.dumps({"task": "verdict", "article": "A is B.", "fact": "A is C.", "answer": "FALSE"})
        + "\n"
    )
    files["bad-examples"].write_text(
        '{"task": "extract", "text": "t", "title": 5, "facts": ["x"]}\n[1]\n{"task": ["v"]}\n'
    )
    files["deep-examples"].write_text("[" * 5000 + "\n")
    files["surrogate-jsonl"].write_text('{"id": "s", "text": "x \\ud800 y"}\n')
    assert (
        run_cli(["--kb", str(kb), "ingest", "-q", str(files["feed"]), str(files["jsonl"])]).code
        == 0
    )
    return CliWorld(kb, {name: str(path) for name, path in files.items()})


COMMANDS = [
    [],
    ["init"],
    ["ingest"],
    ["ask"],
    ["search"],
    ["docs"],
    ["docs", "list"],
    ["docs", "show"],
    ["facts"],
    ["facts", "list"],
    ["history"],
    ["stats"],
    ["forget"],
    ["examples"],
    ["examples", "list"],
    ["examples", "add"],
    ["examples", "rm"],
    ["correct"],
    ["verify"],
    ["nonsense"],
]
OPTIONS = [
    "--json", "--k", "--as-of", "--id", "--replace", "--max-bytes", "--timeout", "--skip-bad",
    "--quiet", "-q", "--all", "--doc", "--limit", "--should-be", "--deep", "--strategy",
    "--embedder", "--chunk-tokens", "--threshold", "--help", "-h", "--version", "--", "-",
    "--kb", "--db", "--llm", "--llm-url", "--model", "--no-such-option", "-x",
]  # fmt: skip
VALUES = [
    "0", "1", "2", "-1", "3", "100", "101", "3.5", "nan", "inf", "-inf", "1e309", "0x10",
    "2024-01-01", "2024-13-45", "0001-01-01", "9999-12-31", "yesterday", "true", "false",
    "kbase", "rag", "erase-paper", "fake", "minilm", "openai", "vllm", "llama-cpp", "a-1",
    "a-2", "j1", "2", "user-123", "999999", "", " ", "x" * 3000, "é漢字\u202e", "\udcff.txt",
    "file:///etc/passwd", "http://127.0.0.1:1/feed.xml", "ftp://x/y", "Who is the CEO?",
]  # fmt: skip
GLOBALS = [
    [],
    ["--json"],
    ["--llm", "openai", "--llm-url", "http://127.0.0.1:1/v1", "--model", "m"],
    ["--llm", "openai"],
    ["--llm", "vllm", "--model", "m"],
    ["--llm", "bogus"],
    ["--db", "postgresql://127.0.0.1:1/none"],
    ["--db", "mysql://x/y"],
    ["--db", "not a url"],
    ["--db", "sqlite:////no/such/folder/kb.db"],
]
#: Junk words: any character an argv can hold but NUL and newline (a newline in an
#: argument splits the error line: test_an_argument_with_a_newline_gives_one_error_line).
JUNK = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n"),
    max_size=12,
)


def _pairs(options: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[str]]:
    """Some of ``options`` (each with a drawn value, or a flag), in random order."""
    items = [
        st.just([name]) if values is FLAG else values.map(lambda v, n=name: [n, v])
        for name, values in options.items()
    ]
    return st.lists(st.one_of(items), max_size=4).map(lambda xs: [w for x in xs for w in x])


FLAG: st.SearchStrategy[str] = st.just("")


@st.composite
def well_formed(draw: st.DrawFn, world: CliWorld) -> list[str]:
    """A command with the right shape, its values drawn from good and bad ones."""
    bad = st.one_of(st.sampled_from(VALUES), JUNK)

    def mostly(*good: str) -> st.SearchStrategy[str]:
        return st.one_of(st.sampled_from(good), st.sampled_from(good), bad)

    value = mostly("1", "3", "8", "2024-03-01", "2024-01-01")
    source = st.one_of(
        st.sampled_from(sorted(world.files.values())),
        st.sampled_from(["-", "http://127.0.0.1:1/feed.xml", "file:///etc/passwd", "missing"]),
    )
    ids = st.sampled_from(["a-1", "a-2", "j1", "2", "nope", ""])
    question = st.one_of(st.sampled_from(["Who is the CEO of Acme?", "Acme", "?"]), JUNK)
    common = {"--json": FLAG, "--k": mostly("1", "3", "8"), "--as-of": mostly("2024-03-01")}
    command = draw(
        st.sampled_from(
            ["ingest", "ask", "search", "show", "list", "facts", "history", "forget", "add", "rm",
             "correct", "verify", "stats", "init", "examples"]
        )
    )  # fmt: skip
    if command == "ingest":
        options = {"--id": mostly("new-id"), "--replace": FLAG,
                   "--max-bytes": mostly("100", "100000"), "--timeout": mostly("0.5", "5"),
                   "--skip-bad": FLAG, "-q": FLAG, "--json": FLAG}  # fmt: skip
        return ["ingest", *draw(_pairs(options)), *draw(st.lists(source, min_size=1, max_size=2))]
    if command in ("ask", "search"):
        return [command, *draw(_pairs(common)), draw(question)]
    if command == "show":
        return ["docs", "show", *draw(_pairs({"--json": FLAG})), draw(ids)]
    if command == "list":
        return ["docs", "list", *draw(_pairs({"--json": FLAG}))]
    if command == "facts":
        options = {"--all": FLAG, "--doc": ids, "--limit": value, "--json": FLAG}
        return ["facts", "list", *draw(_pairs(options))]
    if command == "history":
        return ["history", draw(value), *draw(_pairs({"--json": FLAG}))]
    if command == "forget":
        return ["forget", *draw(_pairs({"--json": FLAG})), *draw(st.lists(ids, min_size=1))]
    if command == "add":
        return ["examples", "add", draw(source)]
    if command == "rm":
        return ["examples", "rm", *draw(st.lists(value, min_size=1, max_size=2))]
    if command == "examples":
        return ["examples", "list", *draw(_pairs({"--json": FLAG}))]
    if command == "correct":
        should = st.sampled_from(["true", "false", "maybe"])
        options = {"--should-be": should, "--doc": ids, "--json": FLAG}
        return ["correct", draw(value), *draw(_pairs(options))]
    if command == "verify":
        return ["verify", *draw(_pairs({"--deep": FLAG, "--json": FLAG}))]
    if command == "init":
        options = {
            "--strategy": st.sampled_from(["kbase", "rag", "erase-paper", "x"]),
            "--embedder": st.sampled_from(["fake", "minilm", "x"]),
            "--chunk-tokens": value,
            "--threshold": value,
        }
        folder = f"new-{draw(st.integers(0, 10**9))}"
        return ["--kb", folder, "init", *draw(_pairs(options))]
    return ["stats", *draw(_pairs({"--json": FLAG}))]


@st.composite
def argument_lists(draw: st.DrawFn, world: CliWorld) -> list[str]:
    """Half well-formed commands, half words of the vocabulary and junk in any order."""
    kb_choice = draw(
        st.sampled_from(
            [[], ["--kb", str(world.kb)], ["--kb", world.files["feed"]], ["--kb", "kb-here"]]
        )
    )
    if draw(st.booleans()):
        command = draw(well_formed(world))
        good = draw(st.sampled_from([[], ["--kb", str(world.kb)]]))
        options = draw(st.one_of(st.just([]), st.just([]), st.sampled_from(GLOBALS)))
        return [*draw(st.sampled_from([good, good, kb_choice])), *options, *command]
    words = draw(
        st.lists(
            st.one_of(
                st.sampled_from(OPTIONS),
                st.sampled_from(VALUES),
                st.sampled_from(sorted(world.files.values())),
                JUNK,
            ),
            max_size=6,
        )
    )
    args = [*kb_choice, *draw(st.sampled_from(GLOBALS)), *draw(st.sampled_from(COMMANDS)), *words]
    if draw(st.integers(0, 9)) == 0:
        args = draw(st.permutations(args))
    return args


@contextlib.contextmanager
def real_streams(stdin: bytes) -> Iterator[tuple[io.BytesIO, io.BytesIO]]:
    """Standard streams as a process has them: UTF-8, strict stdout, stderr that
    escapes what it cannot encode, bytes on stdin."""
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", errors="strict", write_through=True)
    sys.stderr = io.TextIOWrapper(
        err, encoding="utf-8", errors="backslashreplace", write_through=True
    )
    wrappers = sys.stdin, sys.stdout, sys.stderr
    try:
        yield out, err
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        for wrapper in wrappers:
            with contextlib.suppress(ValueError):
                wrapper.flush()
            wrapper.detach()  # keep the buffers readable


def run_main(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """The real entry point with ``sys.argv`` patched; any exception other than
    SystemExit escaping it is a traceback the user would see."""
    import cli

    saved = sys.argv
    sys.argv = ["kb", *args]
    code = 0
    try:
        with real_streams(stdin) as (out, err):
            try:
                cli.main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return code, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8")


def fast_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Knowledge bases the fuzzer creates get fakes: the default embedder and LLM names
    are registered to the fake ones, and the openai backend backs off briefly."""
    from kbase.embed import EMBEDDERS
    from kbase.embed.fake import HashingEmbedder
    from kbase.llm.openai_backend import OpenAIBackend

    def quick_openai(*, base_url: str | None = None, model: str | None = None, **_: Any) -> Any:
        if not base_url:
            from kbase.errors import ConfigError

            raise ConfigError("the openai backend needs a server URL: pass --llm-url")
        return OpenAIBackend(base_url=base_url, model=model, backoff=0.01, timeout=2.0)

    monkeypatch.setitem(EMBEDDERS, "minilm", HashingEmbedder)
    monkeypatch.setitem(EMBEDDERS, "minilm-onnx", HashingEmbedder)
    monkeypatch.setitem(BACKENDS, "llama-cpp", replace(BACKENDS["llama-cpp"], factory=world_llm))
    monkeypatch.setitem(BACKENDS, "openai", replace(BACKENDS["openai"], factory=quick_openai))
    for variable in ("KBASE_DEBUG", "KBASE_DATABASE_URL", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)


UNEXPECTED: list[tuple[list[str], str]] = []
MULTILINE: list[tuple[list[str], str]] = []
OUTCOMES: Counter[str] = Counter()
PROGRESS = ("documents ", "  warning: ")


def check_cli_outcome(args: list[str], code: int, out: str, err: str) -> None:
    """No traceback; a failure exits non-zero with one ``Error: ...`` message on stderr,
    after progress lines only. Messages that run over several lines (a known bug, see
    test_every_error_message_is_one_line) and "unexpected" errors are collected."""
    assert "Traceback (most recent call last)" not in out + err, (args, err)
    if code == 0:
        OUTCOMES["exit 0"] += 1
        return
    lines = [line for line in err.split("\n") if line.strip()]
    if "verify" in args and not lines and out.rstrip().endswith("problems found."):
        OUTCOMES["verify found problems"] += 1
        return  # verify's documented answer: the problems on stdout, exit 1
    starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    assert len(starts) == 1, (args, code, err)
    assert all(line.startswith(PROGRESS) for line in lines[: starts[0]]), (args, err)
    message = lines[starts[0]]
    OUTCOMES[message.split("(", 1)[0].split("'", 1)[0][:40]] += 1
    if starts[0] != len(lines) - 1:
        MULTILINE.append((args, err))
    if message.startswith("Error: unexpected "):
        UNEXPECTED.append((args, message))


@pytest.fixture
def cli_report() -> Iterator[None]:
    OUTCOMES.clear()
    UNEXPECTED.clear()
    MULTILINE.clear()
    yield
    print(f"fuzz[cli]: outcomes {dict(OUTCOMES.most_common(25))}")
    print(f"fuzz[cli]: {len(MULTILINE)} multi-line errors, e.g. {MULTILINE[:3]}")
    print(f"fuzz[cli]: unexpected errors: {UNEXPECTED}")


@fuzz(200)
@given(data=st.data(), stdin=st.sampled_from([b"", RSS, JSONL, b"\x00\x01", b"plain words"]))
def test_random_argument_lists_never_print_a_traceback(
    cli_world: CliWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tally: None,
    cli_report: None,
    data: st.DataObject,
    stdin: bytes,
) -> None:
    fast_fakes(monkeypatch)
    monkeypatch.setenv("KBASE_HOME", str(cli_world.kb))
    monkeypatch.chdir(tmp_path)  # relative --kb paths land in the test's folder
    args = data.draw(argument_lists(cli_world))
    code, out, err = run_main(args, stdin)
    ran("test_random_argument_lists_never_print_a_traceback")
    check_cli_outcome(args, code, out, err)


DOC_IDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120
).filter(lambda t: t.strip() == t and t)


@fuzz(25)
@given(doc_id=DOC_IDS)
def test_any_document_id_can_be_stored_shown_and_forgotten_through_the_cli(
    cli_world: CliWorld, scratch: Path, tally: None, doc_id: str
) -> None:
    kb = ["--kb", str(cli_world.kb)]
    listed = json.loads(run_main([*kb, "docs", "list", "--json"])[1])
    assume(doc_id not in {d["doc_id"] for d in listed})
    source = scratch / "one.txt"
    source.write_text(f"The id of this story is {doc_id!r}.")
    code, _, err = run_main([*kb, "ingest", "-q", "--id", doc_id, str(source)])
    assert code == 0, err
    listed = json.loads(run_main([*kb, "docs", "list", "--json"])[1])
    assert [d["doc_id"] for d in listed].count(doc_id) == 1
    code, out, err = run_main([*kb, "docs", "show", "--json", "--", doc_id])
    assert code == 0 and json.loads(out)["doc_id"] == doc_id, err
    code, out, err = run_main([*kb, "forget", "--json", "--", doc_id])
    assert code == 0 and json.loads(out)["forgotten"] == [doc_id], err
    code, _, err = run_main([*kb, "docs", "show", "--", doc_id])
    assert code == 1 and err.startswith("Error: no document with id "), err
    ran("test_any_document_id_can_be_stored_shown_and_forgotten_through_the_cli")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["docs"],
        ["examples"],
        ["correct", "1"],
        ["ingest", "no-such\nfile.xml"],
        ["init", "extra\nargument"],
    ],
    ids=["kb", "kb-docs", "kb-examples", "missing-choice", "newline-path", "newline-extra"],
)
def test_every_error_message_is_one_line(
    cli_world: CliWorld, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("KBASE_HOME", str(cli_world.kb))
    code, _, err = run_main(args)
    assert code != 0
    assert len(err.strip().split("\n")) == 1 and err.startswith("Error: "), (args, err)


def test_a_file_given_as_the_knowledge_base_folder_is_a_clear_error(
    cli_world: CliWorld,
) -> None:
    code, _, err = run_main(["--kb", cli_world.files["feed"], "ingest", cli_world.files["jsonl"]])
    assert code == 1 and err.startswith("Error: ") and "unexpected" not in err, err


@fuzz(30)
@given(
    surrogate=st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}"),
    field=st.sampled_from(["id", "text", "title", "url"]),
)
def test_a_jsonl_line_with_an_unpaired_surrogate_is_a_bad_line(
    scratch: Path, surrogate: str, field: str
) -> None:
    record = {"id": "s", "text": "Some text.", field: f"x {surrogate} y"}
    path = scratch / "surrogate.jsonl"
    path.write_text(json.dumps(record).replace("\\\\u", "\\u") + "\n")
    with pytest.raises(InputError, match=rf"{path}:1: "):
        read_source(str(path))


def test_examples_add_with_a_deeply_nested_line_names_the_line(cli_world: CliWorld) -> None:
    code, _, err = run_main(
        ["--kb", str(cli_world.kb), "examples", "add", cli_world.files["deep-examples"]]
    )
    assert code == 1 and "deep-examples.jsonl:1" in err and "unexpected" not in err, err


# -- 7. model-side faults ------------------------------------------------------------------
FAULT_DOCS = [
    {
        "id": "d1",
        "text": "The CEO of Acme is Bob. The CFO of Acme is Carol.",
        "published": "2024-01-01",
    },
    {
        "id": "d2",
        "text": "POISON note. Bob stepped down. The CEO of Acme is Alice.",
        "published": "2024-02-01",
    },
    {"id": "d3", "text": "The CEO of Globex is Dana.", "published": "2024-03-01"},
]


def truncated(answer: str) -> str:
    return answer[: max(1, len(answer) // 2)]


FAULTS: dict[str, Callable[[str], str]] = {
    "garbage": lambda _: "I am sorry, as a language model I cannot { answer",
    "empty": lambda _: "",
    "truncated": truncated,
    "wrong-shape": lambda _: json.dumps(["facts", {"facts": 3}]),
}


class FaultyLLM(LLMBackend):
    """The fake world, except for requests about the poisoned chunk of the tasks named:
    those get a bad answer (or raise, as a timed-out server would)."""

    def __init__(self, tasks: set[str], fault: str, *, logprobs: bool = True) -> None:
        self.inner = world_llm(logprobs=logprobs)
        self.model_id = self.inner.model_id
        self.supports_logprobs = logprobs
        self.tasks, self.fault = tasks, fault

    def _hit(self, request: LLMRequest) -> bool:
        return request.task in self.tasks and "POISON" in str(request.fields.get("chunk", ""))

    def generate(self, request: LLMRequest) -> LLMResponse:
        if not self._hit(request):
            return self.inner.generate(request)
        if self.fault == "timeout":
            raise ModelUnavailable("LLM server at http://fake did not answer after 3 tries")
        good = world(request)
        assert isinstance(good, str)
        return LLMResponse(text=FAULTS[self.fault](good))

    def score(self, request: LLMRequest) -> LLMResponse:
        if self._hit(request) and self.fault == "timeout":
            raise ModelUnavailable("LLM server at http://fake did not answer after 3 tries")
        return self.inner.score(request)


def make_fault_kb(
    folder: Path, monkeypatch: pytest.MonkeyPatch, backend: Callable[[], LLMBackend]
) -> Path:
    name = f"faulty-{folder.name}"
    monkeypatch.setitem(BACKENDS, name, BackendEntry(lambda **_: backend()))
    # A share of 1 makes every fact made false ask the model for its rewrite, so a
    # fault in the rewrite request is reached.
    settings = Settings(embedder="fake", llm=name, rewrite_swap_share=1.0)
    KnowledgeBase.open(folder, settings=settings).close()
    return folder


def store_rows(folder: Path) -> dict[str, Any]:
    with KnowledgeBase.open(folder, create=False) as kb:
        problems = verify_index(kb.runtime)

        def rows(session: Any) -> dict[str, Any]:
            return {
                "docs": list(session.scalars(select(Document.doc_id).order_by(Document.seq))),
                "poisoned": session.scalar(
                    select(func.count()).select_from(Chunk).where(Chunk.text.contains("POISON"))
                )
                + session.scalar(
                    select(func.count())
                    .select_from(LLMRecord)
                    .where(LLMRecord.request.contains("POISON"))
                ),
                "current": set(
                    session.scalars(select(Fact.text).where(Fact.valid_until.is_(None)))
                ),
                "embeddings": session.scalar(select(func.count()).select_from(Embedding)),
            }

        return {**kb.runtime.read(rows), "index_problems": problems}


@pytest.mark.parametrize("task", ["extract", "verdict", "rewrite"])
def test_a_model_timeout_mid_batch_stores_the_earlier_documents_and_nothing_of_the_failing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in FAULT_DOCS))
    folder = make_fault_kb(tmp_path / "kb", monkeypatch, lambda: FaultyLLM({task}, "timeout"))
    code, out, err = run_main(["--kb", str(folder), "ingest", "-q", str(source)])
    assert code == 1 and err == "Error: LLM server at http://fake did not answer after 3 tries\n"
    state = store_rows(folder)
    assert state["docs"] == ["d1"] and state["poisoned"] == 0
    assert state["index_problems"] == []
    assert "The CEO of Acme is Bob." in state["current"]
    monkeypatch.setitem(BACKENDS, f"faulty-{folder.name}", BackendEntry(lambda **_: world_llm()))
    code, out, err = run_main(["--kb", str(folder), "ingest", str(source)])
    assert code == 0 and "Stored 2 documents (1 unchanged)" in out, err
    healed = store_rows(folder)
    assert healed["docs"] == ["d1", "d2", "d3"] and healed["index_problems"] == []
    assert "The CEO of Acme is Alice." in healed["current"]
    assert "The CEO of Acme is Bob." not in healed["current"]


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize(
    ("task", "logprobs"), [("extract", True), ("verdicts", False), ("rewrite", True)]
)
def test_bad_answers_change_nothing_and_a_bad_extraction_skips_the_chunk_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, task: str, logprobs: bool
) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in FAULT_DOCS))
    folder = make_fault_kb(
        tmp_path / "kb", monkeypatch, lambda: FaultyLLM({task}, fault, logprobs=logprobs)
    )
    code, _, err = run_main(["--kb", str(folder), "ingest", str(source)])
    state = store_rows(folder)
    assert state["index_problems"] == []
    assert "The CEO of Globex is Dana." in state["current"]
    assert "The CEO of Acme is Bob." in state["current"]  # never edited by a bad answer
    notes = [line for line in err.split("\n") if line and not line.startswith("documents ")]
    if task == "extract":  # d2 is not stored (issue 19), so the next ingest retries it
        assert code == 1 and state["docs"] == ["d1", "d3"], err
        assert notes == [
            "  warning: d2: not stored, the model's facts did not parse for 1 of its 1 chunks",
            "Error: 1 document not stored, the model's answers did not parse: 'd2'; run the "
            "ingest again to retry (check the model if it fails again)",
        ], err
        assert "The CEO of Acme is Alice." not in state["current"]
    else:
        assert code == 0 and state["docs"] == ["d1", "d2", "d3"], err
        assert notes == [], err
        assert "The CEO of Acme is Alice." in state["current"]


def test_verify_finds_nothing_wrong_after_a_first_ingest_that_stored_nothing(
    open_kb: Any,
) -> None:
    def down(request: LLMRequest) -> str:
        raise ModelUnavailable("LLM server at http://fake did not answer after 3 tries")

    kb = open_kb(llm=ScriptedLLM(down, model_id="fake"))
    with pytest.raises(ModelUnavailable):
        kb.ingest([news("d1", "The CEO of Acme is Bob.")])
    assert verify_index(kb.runtime) == []


class AnswerFuzzLLM(LLMBackend):
    """The fake world, except that the extraction of a chunk marked FUZZED gets
    ``extract_answer`` and every verdict gets ``scores``, both set by the test."""

    supports_logprobs = True
    model_id = "answer-fuzz"

    def __init__(self) -> None:
        self.inner = world_llm()
        self.extract_answer = ""
        self.scores: dict[str, float] = {}

    def generate(self, request: LLMRequest) -> LLMResponse:
        if request.task == "extract" and "FUZZED" in request.fields["chunk"]:
            return LLMResponse(text=self.extract_answer)
        return self.inner.generate(request)

    def score(self, request: LLMRequest) -> LLMResponse:
        return LLMResponse(scores=dict(self.scores), completion_tokens=1)


ODD_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, -1e-300, -1e300, float("nan"), float("inf"), float("-inf")]),
)
JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["facts", "x"]), inner)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def fuzz_kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KnowledgeBase, Any]]:
    llm = AnswerFuzzLLM()
    kb = KnowledgeBase.open(
        tmp_path_factory.mktemp("answers") / "kb",
        settings=Settings(embedder="fake"),
        embedder=HashingEmbedder(),
        backend=lambda: llm,
    )
    yield kb, llm
    kb.close()


@fuzz(60)
@given(
    answer=st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
        JSONISH.map(json.dumps),
        st.lists(st.text(max_size=400), max_size=4).map(lambda f: json.dumps({"facts": f})),
        JSONISH.map(lambda v: json.dumps({"facts": v})),
    ),
    scores=st.dictionaries(st.sampled_from(["TRUE", "FALSE", "MAYBE"]), ODD_FLOATS),
)
def test_any_extraction_answer_and_any_verdict_scores_leave_a_consistent_store(
    fuzz_kb: tuple[KnowledgeBase, Any], tally: None, answer: str, scores: dict[str, float]
) -> None:
    kb, llm = fuzz_kb
    llm.extract_answer, llm.scores = answer, scores
    number = RAN["test_any_extraction_answer_and_any_verdict_scores_leave_a_consistent_store"]
    report = kb.ingest(  # unique texts: no request is answered from an earlier example
        [
            news(f"base-{number}", f"The CEO of Firm{number} is Bob."),
            news(f"fuzzed-{number}", f"FUZZED {number}. The CEO of Firm{number} is Carol."),
        ]
    )
    ran("test_any_extraction_answer_and_any_verdict_scores_leave_a_consistent_store")
    assert len(report.stored) + len(report.unchanged) + len(report.failed) == 2
    assert all(d.chunks_skipped for d in report.failed)  # a bad extraction: not stored
    texts = kb.runtime.read(lambda s: list(s.scalars(select(Fact.text))))
    assert all(5 <= len(t) <= 300 and "\n" not in t for t in texts)
    assert verify_index(kb.runtime) == []


def test_a_deeply_nested_garbage_answer_skips_the_chunk(
    fuzz_kb: tuple[KnowledgeBase, Any],
) -> None:
    kb, llm = fuzz_kb
    llm.extract_answer = "[" * 5000
    report = kb.ingest([news("deep-1", "FUZZED. The CEO of Deep is Erin.")])
    assert report.stored == []  # not stored, to be retried (issue 19)
    assert report.failed[0].warnings == ["deep-1: chunk 1 skipped, the model's facts did not parse"]


@pytest.mark.parametrize("answer", ['{"facts": ["The CEO of S is \ud800."]}', "\udcff garbage"])
def test_an_answer_with_an_unpaired_surrogate_does_not_fail_the_ingest(
    fuzz_kb: tuple[KnowledgeBase, Any], answer: str
) -> None:
    kb, llm = fuzz_kb
    llm.extract_answer = answer
    report = kb.ingest([news(f"sur-{len(answer)}", "FUZZED. The CEO of Sur is Erin.")])
    assert len(report.stored) + len(report.failed) == 1  # stored, or not if it did not parse


# -- 8. an OpenAI-compatible server that misbehaves, end to end through `kb ingest` -------
class BadServer(BaseHTTPRequestHandler):
    """Answers chat completions the way ``mode`` says: errors, slowness, odd bodies."""

    mode: ClassVar[str] = "500"
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.seen.append(self.mode)
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        mode = self.mode
        if mode == "slow":
            time.sleep(1.5)
        status, body = 200, b""
        if mode == "500":
            status, body = 500, b'{"error": {"message": "overloaded"}}'
        elif mode == "html":
            body = b"<html>502 Bad Gateway</html>"
        else:
            content = {"garbage": "Sure! Here are the facts: none", "slow": "{}"}.get(mode, "")
            answer: dict[str, Any] = {
                "choices": [{"message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            }
            if mode == "odd-usage":
                answer["usage"] = ["not", "an", "object"]
            if mode == "odd-choice":
                answer["choices"] = [{"message": "not an object"}]
            body = json.dumps(answer).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def bad_server() -> Iterator[str]:
    with local_server(BadServer) as url:
        yield f"{url}/v1"


def seeded_kb(tmp_path: Path) -> tuple[Path, Path]:
    """A knowledge base on fakes holding one document, and a JSONL batch to ingest next."""
    folder = tmp_path / "kb"
    KnowledgeBase.open(folder, settings=Settings(embedder="fake", llm="fake")).close()
    seed = tmp_path / "seed.txt"
    seed.write_text("The mayor of Leeds is Ann.")
    assert run_cli(["--kb", str(folder), "ingest", "--id", "seed", "-q", str(seed)]).code == 0
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in FAULT_DOCS))
    return folder, source


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("down", "did not answer after 3 tries (connection refused)"),
        ("500", "did not answer after 3 tries (HTTP 500: overloaded)"),
        ("slow", "did not answer after 3 tries (timed out after 0.5 s)"),
        ("html", "answered chat/completions with something other than JSON"),
    ],
)
def test_a_failing_openai_server_is_one_clear_line_and_nothing_stored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bad_server: str,
    mode: str,
    expected: str,
) -> None:
    """The real backend, built through the registry with a 0.5 s timeout (the CLI has no
    option for it: a hung server would take 3 x 120 s plus back-off to fail)."""
    real = BACKENDS["openai"]
    quick = replace(real, factory=lambda **kw: real.factory(**{**kw, "timeout": 0.5}))
    monkeypatch.setitem(BACKENDS, "openai", quick)
    no_proxies(monkeypatch)
    BadServer.mode = mode
    url = f"http://127.0.0.1:{free_port()}/v1" if mode == "down" else bad_server
    folder, source = seeded_kb(tmp_path)
    started = time.perf_counter()
    code, _, err = run_main(
        ["--kb", str(folder), "--llm", "openai", "--llm-url", url, "--model", "m",
         "ingest", "-q", str(source)]
    )  # fmt: skip
    assert code == 1 and err == f"Error: LLM server at {url} {expected}" + (
        ": start it or check --llm-url\n" if "tries" in expected else "\n"
    ), err
    assert time.perf_counter() - started < 10
    state = store_rows(folder)
    assert state["docs"] == ["seed"] and state["poisoned"] == 0 and state["index_problems"] == []


@pytest.mark.parametrize(
    "mode",
    [
        "garbage",
        "odd-usage",
        "odd-choice",
    ],
)
def test_an_openai_server_answering_nonsense_skips_chunks_or_fails_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_server: str, mode: str
) -> None:
    no_proxies(monkeypatch)
    BadServer.mode = mode
    folder, source = seeded_kb(tmp_path)
    code, _, err = run_main(
        ["--kb", str(folder), "--llm", "openai", "--llm-url", bad_server, "--model", "m",
         "ingest", str(source)]
    )  # fmt: skip
    state = store_rows(folder)
    assert state["index_problems"] == []
    if "not stored" in err:  # every chunk skipped: the documents are not stored (issue 19)
        assert code == 1 and state["docs"] == ["seed"], err
        assert state["current"] == {"The mayor of Leeds is Ann."}
        assert err.count("not stored, the model's facts did not parse") == 3, err
        assert err.count("Error: ") == 1 and "unexpected" not in err, err
    else:
        assert err.startswith("Error: LLM server at ") and err.count("\n") == 1, err
        assert "unexpected" not in err, err
        assert state["docs"] == ["seed"]


# -- 9. hostile sources (issue 19): encodings, entity tricks, oversize tokens, ids --------
#: Encodings a feed or page may really be written in (Python codec names).
MARKUP_ENCODINGS = [
    "utf-8", "utf-8-sig", "utf-7", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be",
    "latin-1", "iso-8859-2", "cp1252", "cp500", "shift_jis", "koi8-r",
]  # fmt: skip
#: Encodings kbase refuses in markup whatever the bytes: they can hide "<!".
REFUSED_ENCODINGS = {"utf-7", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"}
#: DOCTYPEs, with and without entity declarations, in the spellings parsers differ on.
DOCTYPE_TRICKS = [
    "",
    "<!DOCTYPE {root}>",
    '<!DOCTYPE {root} PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:1/x.dtd">',
    '<!DOCTYPE {root} [<!ENTITY a "LOLLOLLOL">]>',
    '<!DOCTYPE {root} [\n<!ENTITY a "LOLLOLLOL">\n]>',
    '<!doctype {root} [\n  <!entity a "LOLLOLLOL">\n]>',
    '<!DOCTYPE {root} [<!ENTITY % p "LOLLOLLOL"> %p;]>',
    '<!DOCTYPE {root} [<!-- c --><!ENTITY a SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE {root} [<!ENTITY a "&#76;OLLOLLOL"><!ENTITY b "&a;&a;&a;&a;">]>',
]
WORDS_OF_TEXT = ["harbour", "news", "café", "Łódź", "北京", "naïve", "ok", "€uro", "Ünï"]


def utf7_spelled(text: str) -> str:
    """``text`` in UTF-7's base64 form, every character of it (``<!`` is ``+ADwAIQ-``)."""
    if not text:
        return ""
    return "+" + base64.b64encode(text.encode("utf-16-be")).decode().rstrip("=") + "-"


@dataclass(frozen=True)
class Markup:
    data: bytes
    body: str  # the words the documents must hold when the input is read as declared
    visible_entities: bool  # entity declarations show in the text read as declared
    refused_encoding: bool  # the encoding read by is one kbase refuses
    as_declared: bool  # written in the encoding it declares (or UTF-8 without a declaration)


def read_as_declared(data: bytes, declared: str | None) -> str | None:
    """``data`` decoded as the reader should decode it (a UTF-8 BOM wins), or None."""
    try:
        if data.startswith(b"\xef\xbb\xbf"):
            return data.decode("utf-8-sig")
        return data.decode(declared or "utf-8")
    except (LookupError, UnicodeError):
        return None


def build_markup(
    kind: str,
    body: str,
    actual: str,
    declared: str | None,
    trick: str,
    *,
    hide: bool,
    ascii_prolog: bool,
) -> Markup:
    """A feed (``rss``, ``feed``) or page (``html``) holding ``body``, written in ``actual``,
    declaring ``declared``, after ``trick`` (a DOCTYPE or nothing; ``{root}`` is the root)."""
    trick = trick.format(root=kind)
    refs = " &a; &b;" if "ENTITY" in trick.upper() else ""
    if kind == "html":
        head = f'<meta charset="{declared}">' if declared else ""
        prolog = ""
        rest = f"<html><head>{head}<title>T</title></head><body><p>{body}{refs}</p></body></html>"
    else:
        prolog = f'<?xml version="1.0" encoding="{declared}"?>\n' if declared else ""
        if kind == "rss":
            item = f"<item><guid>g</guid><description>{body}{refs}</description></item>"
            rest = f'<rss version="2.0"><channel><title>F</title>{item}</channel></rss>'
        else:
            entry = f"<entry><id>g</id><title>t</title><content>{body}{refs}</content></entry>"
            rest = f'<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title>{entry}</feed>'
    hide = hide and actual == "utf-7"
    if hide:  # no "<!" byte anywhere: the DOCTYPE spelled in UTF-7's base64
        data = (prolog + utf7_spelled(trick) + "\n" + rest).encode("utf-7")
    elif ascii_prolog:  # the declaration readable as ASCII, whatever follows
        data = prolog.encode("ascii") + f"{trick}\n{rest}".encode(actual, "xmlcharrefreplace")
    else:
        data = f"{prolog}{trick}\n{rest}".encode(actual, "xmlcharrefreplace")
    effective = (declared or "utf-8").lower().replace("_", "-")
    plain = actual.removesuffix("-sig")
    text = (read_as_declared(data, declared) or "").lower()
    return Markup(
        data=data,
        body=body,
        visible_entities="<!entity" in text and "<!doctype" in text,
        refused_encoding=effective in REFUSED_ENCODINGS or effective == "unicode-escape",
        as_declared=plain == (declared or "utf-8") and not hide and plain not in REFUSED_ENCODINGS,
    )


@st.composite
def encoded_markup(draw: st.DrawFn) -> Markup:
    """A feed or page written in one encoding, declaring the same, another or none,
    the declaration itself maybe in ASCII over a body in another encoding, and maybe a
    DOCTYPE (in UTF-7, maybe spelled all in base64 so that no ``<!`` byte shows)."""
    words = draw(st.lists(st.sampled_from(WORDS_OF_TEXT), min_size=3, max_size=12))
    # UTF-7 drawn more often: it is the one that hides markup in plain letters.
    actual = draw(st.sampled_from(["utf-7", "utf-7", *MARKUP_ENCODINGS]))
    declared = draw(
        st.one_of(
            st.none(),
            st.just(actual.removesuffix("-sig")),
            st.sampled_from([*MARKUP_ENCODINGS[2:], "bogus-enc", "base64", "unicode_escape"]),
        )
    )
    return build_markup(
        draw(st.sampled_from(["rss", "feed", "html"])),
        " ".join(words).capitalize() + ".",
        actual,
        declared,
        draw(st.sampled_from(DOCTYPE_TRICKS)),
        hide=draw(st.booleans()),
        ascii_prolog=draw(st.booleans()),
    )


#: Found before the fix (issue 19), run every time: a UTF-7 entity bomb, a codec that
#: is no character encoding, an EBCDIC body under an ASCII declaration.
HIDDEN_BOMB = build_markup(
    "rss", "Harbour news.", "utf-7", "utf-7", DOCTYPE_TRICKS[4], hide=True, ascii_prolog=False
)
NOT_AN_ENCODING = build_markup(
    "rss", "Harbour news.", "utf-8", "base64", "", hide=False, ascii_prolog=False
)
EBCDIC_BODY = build_markup(
    "feed", "Harbour news.", "cp500", "cp500", DOCTYPE_TRICKS[3], hide=False, ascii_prolog=True
)


MARKUP_OUTCOMES: Counter[str] = Counter()


@hostile(200)
@given(markup=encoded_markup(), via=st.sampled_from(["stdin", "file", "typed file"]))
@example(markup=HIDDEN_BOMB, via="stdin")
@example(markup=NOT_AN_ENCODING, via="typed file")
@example(markup=EBCDIC_BODY, via="file")
def test_markup_in_any_encoding_is_read_as_checked_or_refused_and_never_expands_entities(
    scratch: Path, tally: None, markup: Markup, via: str
) -> None:
    if via == "stdin":
        result = outcome(lambda: read_source("-", stdin=io.BytesIO(markup.data)))
    else:
        extension = "" if via == "file" else (".html" if b"html" in markup.data else ".xml")
        path = scratch / f"encoded{extension}"
        path.write_bytes(markup.data)
        result = outcome(lambda: read_source(str(path)))
    ran("test_markup_in_any_encoding_is_read_as_checked_or_refused_and_never_expands_entities")
    MARKUP_OUTCOMES[type(result).__name__] += 1
    if markup.visible_entities:
        assert isinstance(result, InputError), "entity declarations are refused"
    if markup.refused_encoding and markup.data.lstrip().startswith((b"<?xml", b"<html")):
        assert isinstance(result, InputError), "UTF-7, UTF-16 and UTF-32 are refused"
    if isinstance(result, InputError):
        return
    assert sum(len(d.text) for d in result) <= len(markup.data), "parsing only shrinks"
    for d in result:
        assert "LOL" not in d.text + (d.title or ""), "no entity was expanded"
    if markup.as_declared and "ENTITY" not in markup.data.decode("latin-1").upper():
        assert any(markup.body in d.text for d in result), (markup.body, result)


OVERSIZE_PIECES = st.one_of(
    st.binary(min_size=1, max_size=3000).map(lambda b: base64.b64encode(b).decode()),
    st.text(alphabet="北京市今天宣布新的交通规划。", min_size=1, max_size=2000),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
        min_size=1,
        max_size=400,
    ),
    st.from_regex(r"https://[a-z]{3,20}\.example/[a-z0-9/-]{10,300}", fullmatch=True),
    st.text(alphabet="0123456789abcdef", min_size=16, max_size=200),
    st.integers(1, 400).map(lambda n: "\U0001f600" * n),
)
TEXT_WITH_OVERSIZE_TOKENS = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([*WORDS_OF_TEXT, "The", "CEO", "is", "Bob."]), OVERSIZE_PIECES),
        st.sampled_from([" ", " ", "\n", "\n\n", ". ", "\t"]),
    ),
    min_size=1,
    max_size=60,
).map(lambda pairs: "".join(word + gap for word, gap in pairs))


@hostile(150)
@given(text=TEXT_WITH_OVERSIZE_TOKENS, budget=st.integers(32, 2000))
def test_oversize_tokens_never_make_a_chunk_over_its_budget(
    tally: None, text: str, budget: int
) -> None:
    from kbase.pipeline.chunking import LONG_WORD_BYTES, chunk_text, estimate_tokens

    chunks = chunk_text(text, budget)
    ran("test_oversize_tokens_never_make_a_chunk_over_its_budget")
    assert chunks and all(chunk.strip() for chunk in chunks)
    for chunk in chunks:
        assert estimate_tokens(chunk) <= budget, (estimate_tokens(chunk), budget)
        longest = max(len(word.encode()) for word in chunk.split())
        assert longest <= max(budget, LONG_WORD_BYTES), longest
    assert "".join("".join(chunks).split()) == "".join(text.split()), "nothing lost or moved"


@hostile(100)
@given(text=st.text(alphabet="abcdefghij klmno.\n", max_size=3000), budget=st.integers(32, 400))
def test_text_of_ordinary_words_still_chunks_exactly_as_before_issue_19(
    tally: None, text: str, budget: int
) -> None:
    from kbase.pipeline.chunking import LONG_WORD_BYTES, chunk_text

    assume(all(len(word) <= LONG_WORD_BYTES for word in text.split()))
    ran("test_text_of_ordinary_words_still_chunks_exactly_as_before_issue_19")
    assert chunk_text(text, budget) == chunking_before_issue_19(text, budget)


HOSTILE_IDS = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b: f"{a}\x1b[{b}m", st.text(max_size=8), st.integers(0, 99)),
    st.sampled_from(["\x00", "a\x00b", "\u202eevil", "c1\x9b2J", "tab\tid", " spaced ", "\x7f"]),
    st.integers(505, 530).map(lambda n: "i" * n),
    st.text(alphabet="é漢\U0001f600", min_size=500, max_size=520),
)


def id_refusal_expected(doc_id: str) -> bool:
    stripped = doc_id.strip()
    return not stripped or id_problem(stripped) is not None


@hostile(200)
@given(
    doc_id=HOSTILE_IDS,
    text=st.text(alphabet="ab \x00\x1b.", min_size=1, max_size=20),
    title=st.one_of(st.none(), st.text(alphabet="t \x00\x07\x1b[", max_size=10)),
    route=st.sampled_from(["jsonl", "--id", "feed"]),
)
def test_hostile_ids_are_refused_at_the_boundary_or_kept_exactly(
    scratch: Path, tally: None, doc_id: str, text: str, title: str | None, route: str
) -> None:
    if route == "jsonl":
        record = {"id": doc_id, "text": text, **({"title": title} if title is not None else {})}
        path = scratch / "ids.jsonl"
        path.write_text(json.dumps(record) + "\n")
        result = outcome(lambda: read_source(str(path)))
    elif route == "--id":
        path = scratch / "one.txt"
        path.write_text("One story.")
        result = outcome(lambda: read_source(str(path), doc_id=doc_id))
    else:
        path = scratch / "ids.xml"
        guid = _xml(doc_id).encode("utf-8", "surrogatepass")
        path.write_bytes(ONE_ITEM.replace(b"<guid>g</guid>", b"<guid>" + guid + b"</guid>"))
        result = outcome(lambda: read_source(str(path)))
    ran("test_hostile_ids_are_refused_at_the_boundary_or_kept_exactly")
    if isinstance(result, InputError):
        message = str(result)
        assert not any(unicodedata.category(c) == "Cc" for c in message), repr(message)
    if route == "feed":
        return  # the XML parser has its own say about control characters
    if route == "jsonl" and (not text.replace("\x00", "").strip()):
        assert isinstance(result, InputError)
        return
    if id_refusal_expected(doc_id):
        assert isinstance(result, InputError), repr(doc_id)
        return
    assert not isinstance(result, InputError), result
    (document,) = result
    assert document.doc_id == doc_id.strip()
    if route == "jsonl":
        assert document.text == text.replace("\x00", "")
        assert not any(c in (document.title or "") for c in "\x00\x07\x1b")


BATCH_FILES = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["X.", "Y."])),
    min_size=1,
    max_size=4,
).filter(lambda files: any(files))


@hostile(100)
@given(files=BATCH_FILES, as_folder=st.booleans())
def test_one_id_with_two_texts_in_one_batch_is_an_error_and_repeats_are_read_once(
    tally: None, files: list[dict[str, str]], as_folder: bool
) -> None:
    from kbase.sources import read_sources

    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for number, records in enumerate(files):
            path = Path(folder) / f"part-{number}.jsonl"
            lines = [json.dumps({"id": i, "text": t}) for i, t in records.items()]
            path.write_text("\n".join(lines) + "\n" if lines else "\n")
            paths.append(str(path))
        if as_folder:
            result = outcome(lambda: read_source(folder))
        else:
            given = [path for path, records in zip(paths, files, strict=True) if records]
            result = outcome(lambda: read_sources(given))
    ran("test_one_id_with_two_texts_in_one_batch_is_an_error_and_repeats_are_read_once")
    texts: dict[str, set[str]] = {}
    order: list[str] = []
    for records in files:
        for doc_id, text in records.items():
            if doc_id not in texts:
                order.append(doc_id)
            texts.setdefault(doc_id, set()).add(text)
    if as_folder and not all(files):
        # An empty JSONL file is a bad file, and one bad file fails the folder.
        assert isinstance(result, InputError)
        return
    if any(len(found) > 1 for found in texts.values()):
        assert isinstance(result, InputError) and "given twice with different texts" in str(result)
    else:
        assert not isinstance(result, InputError), result
        assert [d.doc_id for d in result] == order


# -- 10. hostile model-server answers (issue 19) --------------------------------------------
#: What a token count, a log-probability or a field may be in a broken server's answer.
HOSTILE_NUMBERS = st.one_of(
    st.integers(-(10**25), 10**25),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 10**9, 10**9 + 1, 10**20, 1e999, -1e999, 2.5, True, "7", None]),
)
JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), HOSTILE_NUMBERS, st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
TOKEN_TEXTS = st.one_of(st.sampled_from(["TRUE", "FALSE", " TRUE", "T", "F", "", "\x00"]), JUNK)
LOGPROB_ENTRY = st.one_of(
    st.fixed_dictionaries({"token": TOKEN_TEXTS, "logprob": HOSTILE_NUMBERS}), JUNK
)
LOGPROBS = st.one_of(
    st.fixed_dictionaries(
        {
            "content": st.one_of(
                st.lists(
                    st.one_of(
                        st.fixed_dictionaries(
                            {"token": TOKEN_TEXTS, "logprob": HOSTILE_NUMBERS},
                            optional={
                                "top_logprobs": st.one_of(st.lists(LOGPROB_ENTRY, max_size=4), JUNK)
                            },
                        ),
                        JUNK,
                    ),
                    max_size=3,
                ),
                JUNK,
            )
        }
    ),
    JUNK,
)
USAGE = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": HOSTILE_NUMBERS,
            "completion_tokens": HOSTILE_NUMBERS,
            "prompt_tokens_details": st.one_of(
                st.fixed_dictionaries({"cached_tokens": HOSTILE_NUMBERS}), JUNK
            ),
        },
    ),
    JUNK,
)
CHOICE = st.fixed_dictionaries(
    {},
    optional={
        "message": st.one_of(st.fixed_dictionaries({"content": st.one_of(st.text(), JUNK)}), JUNK),
        "logprobs": LOGPROBS,
    },
)
MODEL_ANSWERS = st.one_of(
    st.fixed_dictionaries(
        {"choices": st.one_of(st.lists(st.one_of(CHOICE, JUNK), max_size=2), JUNK)},
        optional={"usage": USAGE},
    ).map(lambda body: json.dumps(body).encode()),
    JUNK.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=60),
)
#: A password in the server's URL: no message may show it.
URL_SECRET = "Pw-of-the-fuzzed-server"


def check_model_response(response: LLMResponse, scored: bool) -> None:
    from kbase.llm.base import MAX_TOKENS

    for count in (response.prompt_tokens, response.cached_tokens, response.completion_tokens):
        assert type(count) is int and 0 <= count <= MAX_TOKENS, response
    if scored:
        assert response.scores is not None and set(response.scores) == {"TRUE", "FALSE"}
        assert all(type(v) is float and math.isfinite(v) for v in response.scores.values())
    else:
        assert isinstance(response.text, str)


@hostile(300)
@given(body=MODEL_ANSWERS, status=st.sampled_from([200, 200, 200, 200, 400, 429, 500]))
@example(
    body=b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": NaN}}',
    status=200,
)
@example(body=b'{"choices": [{"logprobs": {"content": "abc"}}]}', status=200)
@example(body=b'{"choices": [{"logprobs": {"content": [{"top_logprobs": 5}]}}]}', status=200)
def test_any_model_server_answer_is_a_sane_response_or_a_one_line_model_error(
    tally: None, body: bytes, status: int
) -> None:
    import httpx

    from kbase.errors import ModelError
    from kbase.llm.base import Message
    from kbase.llm.openai_backend import OpenAIBackend

    transport = httpx.MockTransport(lambda _request: httpx.Response(status, content=body))
    backend = OpenAIBackend(
        base_url=f"http://kb:{URL_SECRET}@llm.invalid/v1",
        model="m",
        transport=transport,
        retries=1,
    )
    asks = [
        (False, LLMRequest("answer", (Message("user", "q"),), "v1")),
        (True, LLMRequest("verdict", (Message("user", "q"),), "v1", choices=("TRUE", "FALSE"))),
    ]
    try:
        for scored, request in asks:
            ran("test_any_model_server_answer_is_a_sane_response_or_a_one_line_model_error")
            try:
                response = backend.score(request) if scored else backend.generate(request)
            except ModelError as exc:
                message = str(exc)
                assert message and "\n" not in message and URL_SECRET not in message, message
                continue
            check_model_response(response, scored)
    finally:
        backend.close()
