"""Hostile sources (issue 19): encodings that hide markup, entity bombs, oversize tokens,
special files, repeated and hostile ids, NUL characters.

Each test states a rule of the source boundary (``kbase.sources``) or of chunking; the
generated counterparts are in tests/test_fuzz.py, section 8.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbase.errors import InputError
from kbase.pipeline.chunking import LONG_WORD_BYTES, chunk_text, estimate_tokens
from kbase.sources import MAX_ID_CHARS, SourceDocument, check_batch, read_source, read_sources
from tests.conftest import OpenKB

ITEM = "<item><guid>g</guid><title>T</title><description>{body}</description></item>"


def rss(body: str, *, declaration: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> str:
    return f'{declaration}<rss version="2.0"><channel>{ITEM.format(body=body)}</channel></rss>'


def utf7_spelled(text: str) -> str:
    """``text`` in UTF-7's base64 form, every character of it: ``<!`` becomes ``+ADwAIQ-``."""
    return "+" + base64.b64encode(text.encode("utf-16-be")).decode().rstrip("=") + "-"


def read_bytes(data: bytes, **options: object) -> list[SourceDocument]:
    return read_source("-", stdin=io.BytesIO(data), **options)  # type: ignore[arg-type]


def refusal(data: bytes, **options: object) -> str:
    with pytest.raises(InputError) as caught:
        read_bytes(data, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- 1. encodings, entity declarations, the size of the parsed text ---------------------
#: 12 KB that expand to 6,000,000 characters: an internal entity of 10,000 characters
#: referenced 600 times, its declarations spelled in UTF-7 so that no "<!" byte shows.
UTF7_BOMB = (
    b'<?xml version="1.0" encoding="utf-7"?>\n'
    + utf7_spelled('<!DOCTYPE rss [\n<!ENTITY a "').encode()
    + b"A" * 10_000
    + utf7_spelled('">\n]>').encode()
    + b'\n<rss version="2.0"><channel><item><guid>g</guid><description>'
    + b"&a;" * 600
    + b"</description></item></channel></rss>"
)


def test_a_utf7_feed_hiding_an_entity_bomb_is_refused_before_anything_expands() -> None:
    assert b"<!" not in UTF7_BOMB and len(UTF7_BOMB) < 13_000

    message = refusal(UTF7_BOMB)

    assert "UTF-7" in message and "convert it to UTF-8" in message


def test_a_utf7_page_hiding_a_doctype_is_refused() -> None:
    page = (
        '<html><head><meta charset="utf-7"></head><body>'
        + utf7_spelled('<!DOCTYPE html [<!ENTITY x "boom">]>')
        + "<p>Harbour news, plenty of words in it. &x;</p></body></html>"
    ).encode()

    assert "UTF-7" in refusal(page)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_feeds_without_a_byte_order_mark_are_refused_as_such(
    encoding: str,
) -> None:
    feed = rss("Harbour news.", declaration='<?xml version="1.0"?>').encode(encoding)

    assert "is UTF-16 or UTF-32 text: convert it to UTF-8" in refusal(feed)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_feeds_with_a_byte_order_mark_are_refused(encoding: str) -> None:
    feed = rss("Harbour news.").encode(encoding)

    assert "is UTF-16 or UTF-32 text: convert it to UTF-8" in refusal(feed)


@pytest.mark.parametrize("declared", ["utf-16", "UTF-32", "utf-7", "unicode_escape"])
def test_encodings_that_can_hide_markup_are_refused_when_declared(declared: str) -> None:
    feed = rss("Harbour news.", declaration=f'<?xml version="1.0" encoding="{declared}"?>')

    message = refusal(feed.encode("ascii"))

    assert "which kbase refuses (it can hide markup): convert it to UTF-8" in message


def test_a_feed_whose_bytes_are_not_in_the_declared_encoding_is_refused() -> None:
    # EBCDIC maps every byte, so ASCII read as cp500 "decodes", into nonsense.
    feed = rss("Harbour news.", declaration='<?xml version="1.0" encoding="cp500"?>')

    message = refusal(feed.encode("ascii"))

    assert message == (
        "standard input declares encoding 'cp500' but is not written in it: "
        "convert it to UTF-8 (and declare that)"
    )


def test_an_ebcdic_body_under_an_ascii_declaration_cannot_hide_entities() -> None:
    body = '<!DOCTYPE rss [<!ENTITY a "LOL">]>' + rss("&a;&a;", declaration="")
    feed = b'<?xml version="1.0" encoding="cp500"?>' + body.encode("cp500")

    assert b"<!" not in feed[40:]
    assert "is not written in it" in refusal(feed)


def test_a_page_whose_bytes_are_not_in_its_meta_charset_is_refused() -> None:
    page = b'<html><head><meta charset="cp500"></head><body><p>Hello there.</p></body></html>'

    assert "declares charset 'cp500' but is not written in it" in refusal(page)


@pytest.mark.parametrize("declared", ["base64", "zlib", "hex", "undefined"])
def test_declared_names_that_are_not_character_encodings_are_refused(declared: str) -> None:
    feed = rss("Harbour news.", declaration=f'<?xml version="1.0" encoding="{declared}"?>')

    message = refusal(feed.encode("ascii"))

    assert message == (
        f"standard input declares '{declared}', which is not a character encoding: "
        "convert it to UTF-8"
    )


def test_entity_declarations_are_refused_in_a_legacy_encoding_too() -> None:
    feed = '<?xml version="1.0" encoding="iso-8859-1"?><!DOCTYPE rss [<!ENTITY a "é">]>'
    feed += rss("&a;", declaration="")

    assert "declares XML entities" in refusal(feed.encode("latin-1"))


def test_a_utf8_byte_order_mark_wins_over_a_declared_legacy_encoding() -> None:
    feed = b"\xef\xbb\xbf" + rss(
        "Le café rouvre.", declaration='<?xml version="1.0" encoding="iso-8859-1"?>'
    ).encode("utf-8")

    (document,) = read_bytes(feed)

    assert document.text == "Le café rouvre."


def test_a_feed_in_a_declared_legacy_encoding_is_parsed_as_the_text_that_was_checked() -> None:
    feed = rss("Łódź i Poznań, źródło.", declaration='<?xml version="1.0" encoding="iso-8859-2"?>')

    (document,) = read_bytes(feed.encode("iso-8859-2"))

    assert document.text == "Łódź i Poznań, źródło."


def test_text_that_grows_past_the_limit_once_parsed_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last line of defence: should an entity declaration ever get past the check,
    the text it expands to is still capped by --max-bytes, counted in characters."""
    import kbase.sources.feeds as feeds

    monkeypatch.setattr(feeds, "refuse_entity_declarations", lambda name, markup: None)
    bomb = UTF7_BOMB.decode("utf-7").replace('encoding="utf-7"', 'encoding="utf-8"').encode()

    message = refusal(bomb, max_bytes=1_000_000)

    assert re.match(r"standard input holds 6000\d{3} characters of text once parsed", message)
    assert "--max-bytes" in message


# --- 2. chunking: oversize tokens ------------------------------------------------------
def chunking_before_issue_19(text: str, budget: int) -> list[str]:
    """kbase.pipeline.chunking.chunk_text as it was before issue 19, the reference for
    text of ordinary words (the recorded replays depend on those chunks)."""
    paragraph_re = re.compile(r"\n\s*\n")
    sentence_re = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

    def estimate(part: str) -> int:
        return (len(part.split()) * 13 + 9) // 10

    units: list[str] = []
    for paragraph in (" ".join(p.split()) for p in paragraph_re.split(text)):
        if not paragraph:
            continue
        if estimate(paragraph) <= budget:
            units.append(paragraph)
            continue
        for sentence in sentence_re.split(paragraph):
            if estimate(sentence) <= budget:
                units.append(sentence)
                continue
            words, per = sentence.split(), max(1, budget * 10 // 13)
            units.extend(" ".join(words[i : i + per]) for i in range(0, len(words), per))
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        if current and size + estimate(unit) > budget:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(unit)
        size += estimate(unit)
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def assert_within(chunks: list[str], text: str, budget: int) -> None:
    assert all(estimate_tokens(chunk) <= budget for chunk in chunks)
    assert all(len(word.encode()) <= budget for chunk in chunks for word in chunk.split())
    assert "".join("".join(chunks).split()) == "".join(text.split()), "no character lost"


def test_a_single_32_kb_token_is_cut_into_chunks_within_the_budget() -> None:
    token = base64.b64encode(bytes(range(256)) * 94).decode()  # 32,088 characters
    text = f"The attachment follows.\n\n{token}\n\nThat was all."

    chunks = chunk_text(text, 350)

    assert_within(chunks, text, 350)
    assert chunks[0] == "The attachment follows."
    assert chunks[-1].endswith("That was all.")
    assert max(len(chunk) for chunk in chunks) <= 350


def test_text_without_spaces_counts_by_its_bytes_and_stays_within_the_budget() -> None:
    text = "北京市今天宣布新的交通规划。" * 400  # one "word" of 16,800 bytes

    chunks = chunk_text(text, 350)

    assert_within(chunks, text, 350)
    assert len(chunks) >= len(text.encode()) // 350


def test_a_long_word_counts_one_token_per_byte_and_an_ordinary_one_1_3() -> None:
    ordinary, long = "a" * LONG_WORD_BYTES, "a" * (LONG_WORD_BYTES + 1)

    assert estimate_tokens(f"{ordinary} {ordinary} {ordinary}") == 4
    assert estimate_tokens(long) == LONG_WORD_BYTES + 1
    assert estimate_tokens("é" * 13) == 26  # 26 bytes


#: Words of up to LONG_WORD_BYTES bytes: what news text is made of.
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFé.!?,'\"(0123", min_size=1, max_size=12)
ORDINARY_TEXT = st.lists(
    st.tuples(WORDS, st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\n \n", ". ", "\t"])),
    max_size=400,
).map(lambda pairs: "".join(word + gap for word, gap in pairs))


@settings(max_examples=150, deadline=None, database=None)
@given(text=ORDINARY_TEXT, budget=st.sampled_from([1, 2, 5, 32, 33, 64, 100, 350]))
def test_text_of_ordinary_words_chunks_exactly_as_before_issue_19(text: str, budget: int) -> None:
    assert chunk_text(text, budget) == chunking_before_issue_19(text, budget)


# --- 3. special files, repeated ids, hostile ids, NUL ---------------------------------
def test_a_named_pipe_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "feed.xml"
    os.mkfifo(fifo)
    outcome: list[BaseException | object] = []

    def read() -> None:
        try:
            outcome.append(read_source(str(fifo), timeout=1))
        except BaseException as exc:  # reported below
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked opening the pipe: free it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("reading a named pipe blocked")
    (error,) = outcome
    assert isinstance(error, InputError)
    assert str(error) == (
        f"{fifo} is a named pipe (FIFO), which kbase does not read: give a regular file, "
        "or - to read it from standard input"
    )


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_as_a_source() -> None:
    assert stat.S_ISCHR(os.stat("/dev/zero").st_mode)

    with pytest.raises(InputError, match=r"^/dev/zero is a device, which kbase does not read"):
        read_source("/dev/zero")


def test_the_same_id_with_different_texts_in_one_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": "quay", "text": "The quay opens."}\n')
    (tmp_path / "b.jsonl").write_text('{"id": "quay", "text": "The quay stays shut."}\n')

    with pytest.raises(InputError) as caught:
        read_source(str(tmp_path))

    assert str(caught.value) == (
        f"id 'quay' is given twice with different texts ({tmp_path / 'a.jsonl'} and "
        f"{tmp_path / 'b.jsonl'}): give each document its own id, or ingest them in "
        "separate commands"
    )


def test_the_same_document_in_two_files_of_a_folder_is_read_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.txt").write_text("The quay opens on Monday.")
    (tmp_path / "copy.txt").write_text("The quay opens on Monday.")
    caplog.set_level(logging.INFO, logger="kbase")

    documents = read_source(str(tmp_path))

    assert [d.source for d in documents] == [str(tmp_path / "a.txt")]
    assert "with the same text; reading it once" in caplog.text


def test_sources_read_as_one_batch_may_not_give_one_id_two_texts(tmp_path: Path) -> None:
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    first.write_text('{"id": "quay", "text": "The quay opens."}\n')
    second.write_text('{"id": "quay", "text": "The quay stays shut."}\n')

    with pytest.raises(InputError, match=r"^id 'quay' is given twice with different texts"):
        read_sources([str(first), str(second)])
    assert [d.doc_id for d in read_sources([str(first), str(first)])] == ["quay"]


def test_check_batch_keeps_the_first_of_identical_repeats() -> None:
    one = SourceDocument(doc_id="x", text="Same.", source="a")
    again = SourceDocument(doc_id="x", text="Same.", source="b")

    assert check_batch([one, again]) == [one]


HOSTILE_IDS = ["red\x1b[31mtext", "bell\x07", "nul\x00id", "del\x7f", "line\nbreak", "c1\x9b2J"]


@pytest.mark.parametrize("doc_id", HOSTILE_IDS)
def test_ids_with_control_characters_are_refused_and_shown_escaped(doc_id: str) -> None:
    line = json.dumps({"id": doc_id, "text": "Some text."}) + "\n"
    feed = rss("Some text.").replace("<guid>g</guid>", f"<guid>{doc_id}</guid>")
    messages = [refusal(line.encode()), refusal(b"Some text.", doc_id=doc_id)]
    if doc_id.isascii() and "\x00" not in doc_id:  # feedparser maps C1 controls to cp1252
        messages.append(refusal(feed.encode()))

    for message in messages:
        assert "holds the control character" in message, message
        assert not any(char in message for char in "\x00\x07\x1b\x7f\x9b"), repr(message)
        assert "none of them a control character" in message


def test_an_id_over_512_characters_is_refused_and_one_of_512_accepted() -> None:
    def line(doc_id: str) -> bytes:
        return json.dumps({"id": doc_id, "text": "Some text."}).encode() + b"\n"

    assert MAX_ID_CHARS == 512
    assert [d.doc_id for d in read_bytes(line("é" * 512))] == ["é" * 512]
    message = refusal(line("x" * 513))
    assert message.startswith("standard input:1: id 'xxx")
    assert "is 513 characters long: give an id of at most 512 characters" in message
    assert "is 600 characters long" in refusal(b"Some text.", doc_id="y" * 600)


def test_skip_bad_leaves_out_a_line_with_a_hostile_id() -> None:
    lines = b'{"id": "ok", "text": "Fine."}\n{"id": "bad\\u001b", "text": "Not fine."}\n'

    assert [d.doc_id for d in read_bytes(lines, skip_bad=True)] == ["ok"]


def test_nul_characters_are_dropped_from_text_title_and_url() -> None:
    line = json.dumps({"id": "n", "text": "Har\0bour", "title": "T\0\x1b[2J", "url": "h\0"})

    (document,) = read_bytes(line.encode())

    assert (document.text, document.title, document.url) == ("Harbour", "T[2J", "h")


def test_a_text_of_nothing_but_nul_characters_is_refused() -> None:
    message = refusal(b'{"id": "n", "text": "\\u0000\\u0000"}\n')

    assert message == (
        "standard input: document 'n' has no text but NUL characters: give it some text"
    )


def test_the_boundary_rules_hold_on_sqlite_and_postgresql_alike(
    open_kb: OpenKB, database_url: str | None, tmp_path: Path
) -> None:
    source = tmp_path / "hostile.jsonl"
    longest = "i" * MAX_ID_CHARS
    record = {"id": longest, "text": "The mayor of Leeds is Ann.\0", "title": "A\0"}
    source.write_text(json.dumps(record) + "\n")
    documents = read_source(str(source))
    kb = open_kb(database_url=database_url)

    kb.ingest(documents)

    stored = kb.document(longest)
    assert stored.text == "The mayor of Leeds is Ann."
    source.write_text(json.dumps({"id": longest + "i", "text": "Too long an id."}) + "\n")
    with pytest.raises(InputError, match="is 513 characters long"):
        read_source(str(source))
