"""How kbase turns files, folders, URLs and standard input into documents.

Fixtures in tests/data/sources/ are invented news items; odd inputs are written to
``tmp_path`` by the tests that need them, and URLs are served from 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from kbase.errors import FetchError, InputError
from kbase.hashing import content_hash
from kbase.sources import DEFAULT_MAX_BYTES, SourceDocument, read_source
from kbase.sources.dates import parse_date
from kbase.sources.html import html_to_text
from tests.helpers import local_server, no_proxies

DATA = Path(__file__).parent / "data" / "sources"
RSS = str(DATA / "millbrook-gazette.rss")
ATOM = str(DATA / "riverside-council.atom")
RDF = str(DATA / "hillside-radio.rdf")
JSONL = str(DATA / "market-reports.jsonl")
MARKDOWN = str(DATA / "lantern-festival.md")
HTML = str(DATA / "orchard-article.html")

ONE_ITEM_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Quay Weekly</title>
<item><guid>quay-1</guid><title>Tide tables printed</title>
<link>https://quay.example/tides</link>
<description>The harbour office printed this year's tide tables.</description></item>
</channel></rss>
"""


def write(path: Path, content: bytes | str) -> str:
    """Write a test input file and return its path as a string, as a user would type it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return str(path)


def rss_with_items(*items: str) -> str:
    """An RSS 2.0 feed around the given ``<item>`` elements."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>Test feed</title>" + "".join(items) + "</channel></rss>"
    )


# --- RSS 2.0 ---------------------------------------------------------------------------


def test_rss_feed_gives_one_document_per_entry() -> None:
    documents = read_source(RSS)

    assert [d.title for d in documents] == [
        "Ferry timetable changes for the winter",
        "Library opens a repair café",
        "Bakers vote on a shared oven",
    ]
    assert all(isinstance(d, SourceDocument) for d in documents)
    assert all(d.source == RSS for d in documents)


def test_rss_entry_id_is_the_guid_else_the_link_else_the_content_hash() -> None:
    with_guid, with_link_only, with_neither = read_source(RSS)

    assert with_guid.doc_id == "gazette-2024-0117"
    assert with_link_only.doc_id == "https://gazette.millbrook.example/2024/repair-cafe"
    assert with_neither.doc_id == content_hash(with_neither.text)
    assert with_neither.doc_id == with_neither.content_hash


def test_rss_entry_url_is_its_link() -> None:
    with_guid, _, with_neither = read_source(RSS)

    assert with_guid.url == "https://gazette.millbrook.example/2024/ferry-winter"
    assert with_neither.url is None


def test_rss_pubdate_becomes_naive_utc() -> None:
    plus_two_hours, gmt, undated = read_source(RSS)

    assert plus_two_hours.published == datetime(2024, 1, 16, 7, 30)
    assert gmt.published == datetime(2024, 1, 17, 18, 0)
    assert undated.published is None
    assert plus_two_hours.published.tzinfo is None


def test_rss_full_content_is_preferred_over_the_description() -> None:
    ferry = read_source(RSS)[0]

    assert "Short version" not in ferry.text
    assert ferry.text.startswith("The river ferry will run every forty minutes")


def test_html_in_entries_becomes_plain_text_with_blank_lines_between_paragraphs() -> None:
    ferry, repair_cafe, _ = read_source(RSS)

    assert ferry.text == (
        "The river ferry will run every forty minutes instead of every half hour "
        "from the first of February.\n\n"
        "The operator says the change saves fuel during the quiet months "
        "and will be reviewed in April."
    )
    assert "<p>" not in repair_cafe.text
    assert repair_cafe.text.endswith("Bring the broken thing & a cup of patience.")


# --- Atom and RDF ----------------------------------------------------------------------


def test_atom_feed_uses_entry_id_link_and_content() -> None:
    bridge, recycling = read_source(ATOM)

    assert bridge.doc_id == "urn:example:riverside-council:notice-41"
    assert bridge.url == "https://council.riverside.example/notices/41"
    assert bridge.text == (
        "Mill Lane bridge will be closed to cars for three weeks while the railings "
        "are replaced.\n\nPedestrians can still cross on the east footpath."
    )
    assert recycling.text == "Glass is now collected on Thursdays and paper on alternate Mondays."


def test_atom_html_title_becomes_plain_text() -> None:
    bridge, _ = read_source(ATOM)

    assert bridge.title == "Bridge closure on Mill Lane"


def test_atom_published_date_wins_over_updated_and_updated_is_the_fallback() -> None:
    bridge, recycling = read_source(ATOM)

    assert bridge.published == datetime(2024, 3, 1, 7, 15)  # published, +01:00
    assert recycling.published == datetime(2024, 3, 2, 11, 45)  # updated only


def test_rdf_feed_reads_items_and_dublin_core_dates() -> None:
    (night_show,) = read_source(RDF)

    assert night_show.title == "Night show moves to Fridays"
    assert night_show.doc_id == "https://radio.hillside.example/news/night-show"
    assert night_show.published == datetime(2024, 4, 6, 2, 0)  # 21:00 at -05:00
    assert night_show.text.startswith("The late-night folk programme moves")


# --- Feed edge cases -------------------------------------------------------------------


def test_feed_entry_without_text_is_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = write(
        tmp_path / "feed.xml",
        rss_with_items(
            "<item><guid>empty</guid><title>Only a title</title></item>",
            "<item><guid>full</guid><description>Some text.</description></item>",
        ),
    )
    caplog.set_level(logging.INFO, logger="kbase")

    documents = read_source(feed)

    assert [d.doc_id for d in documents] == ["full"]
    assert "skipping entry 1: it has no text" in caplog.text


def test_duplicate_ids_in_one_feed_keep_the_first_entry_and_log_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = write(
        tmp_path / "feed.xml",
        rss_with_items(
            "<item><guid>same</guid><description>First version.</description></item>",
            "<item><guid>same</guid><description>Second version.</description></item>",
            "<item><guid>other</guid><description>Another story.</description></item>",
        ),
    )
    caplog.set_level(logging.INFO, logger="kbase")

    documents = read_source(feed)

    assert [(d.doc_id, d.text) for d in documents] == [
        ("same", "First version."),
        ("other", "Another story."),
    ]
    assert "entry 2 repeats id 'same'" in caplog.text


def test_feed_entry_with_an_unreadable_date_has_no_date_and_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    feed = write(
        tmp_path / "feed.xml",
        rss_with_items(
            "<item><guid>a</guid><pubDate>sometime last week</pubDate>"
            "<description>Text.</description></item>"
        ),
    )
    caplog.set_level(logging.INFO, logger="kbase")

    (document,) = read_source(feed)

    assert document.published is None
    assert "unreadable date 'sometime last week'" in caplog.text


def test_feed_in_a_declared_legacy_encoding_is_decoded(tmp_path: Path) -> None:
    latin1 = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"><channel>'
        "<item><guid>cafe</guid><description>Le café du port rouvre.</description></item>"
        "</channel></rss>"
    ).encode("latin-1")
    feed = write(tmp_path / "feed.rss", latin1)

    (document,) = read_source(feed)

    assert document.text == "Le café du port rouvre."


def test_feed_whose_bytes_do_not_match_its_encoding_is_refused(tmp_path: Path) -> None:
    feed = write(
        tmp_path / "feed.rss",
        rss_with_items("<item><description>caf").encode() + b"\xe9</description></item>",
    )

    with pytest.raises(InputError) as caught:
        read_source(feed)

    message = str(caught.value)
    assert "\n" not in message
    assert "is not valid UTF-8" in message
    assert "convert it to UTF-8" in message


def test_feed_without_entries_is_an_error(tmp_path: Path) -> None:
    feed = write(tmp_path / "feed.xml", rss_with_items())

    with pytest.raises(InputError) as caught:
        read_source(feed)

    message = str(caught.value)
    assert "\n" not in message
    assert message == f"{feed} is a feed without entries: give a feed with at least one entry"


def test_feed_whose_entries_all_lack_text_is_an_error(tmp_path: Path) -> None:
    feed = write(tmp_path / "feed.xml", rss_with_items("<item><title>Only a title</title></item>"))

    with pytest.raises(InputError, match="has 1 entries but none has any text"):
        read_source(feed)


def test_broken_xml_is_an_error_naming_the_parse_problem(tmp_path: Path) -> None:
    feed = write(tmp_path / "feed.xml", '<?xml version="1.0"?>\n<rss version="2.0">\n<channel')

    with pytest.raises(InputError) as caught:
        read_source(feed)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{feed} is not a valid feed (line 3: ")
    assert message.endswith("give an RSS, Atom or RDF feed")


def test_xml_that_is_not_a_feed_is_an_error(tmp_path: Path) -> None:
    catalog = write(tmp_path / "books.xml", '<?xml version="1.0"?><catalog><book/></catalog>')

    with pytest.raises(InputError) as caught:
        read_source(catalog)

    assert str(caught.value) == (
        f"{catalog} is not an RSS, Atom or RDF feed: check that it is the feed itself"
    )


def test_feed_declaring_entities_is_refused_without_expanding_them(tmp_path: Path) -> None:
    billion_laughs = write(
        tmp_path / "bomb.xml",
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;">]><rss version="2.0"><channel><item>'
        "<description>&c;</description></item></channel></rss>",
    )

    with pytest.raises(InputError) as caught:
        read_source(billion_laughs)

    message = str(caught.value)
    assert "\n" not in message
    assert "declares XML entities in a <!DOCTYPE>" in message


def test_feed_with_an_external_entity_is_refused(tmp_path: Path) -> None:
    external = write(
        tmp_path / "feed.rss",
        '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
        '<rss version="2.0"><channel><item><description>&secret;</description></item>'
        "</channel></rss>",
    )

    with pytest.raises(InputError, match="declares XML entities"):
        read_source(external)


def test_feed_with_a_plain_public_doctype_is_accepted(tmp_path: Path) -> None:
    feed = write(
        tmp_path / "old.rss",
        '<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
        ' "http://my.netscape.example/rss-0.91.dtd"><rss version="0.91"><channel>'
        "<title>Old</title><item><title>Hello</title><link>https://old.example/1</link>"
        "<description>An old-style item.</description></item></channel></rss>",
    )

    (document,) = read_source(feed)

    assert document.text == "An old-style item."


# --- JSONL -----------------------------------------------------------------------------


def test_jsonl_gives_one_document_per_line_and_ignores_blank_lines() -> None:
    documents = read_source(JSONL)

    assert [d.doc_id for d in documents] == ["market-001", "2", "market-003"]
    assert documents[0].title == "Apple prices fall"
    assert documents[0].url == "https://market.example/reports/1"
    assert documents[1].title is None
    assert documents[1].url is None
    assert all(d.source == JSONL for d in documents)


def test_jsonl_integer_ids_become_strings() -> None:
    assert read_source(JSONL)[1].doc_id == "2"


def test_jsonl_published_accepts_a_date_iso_8601_and_rfc_822() -> None:
    plain_date, iso_with_offset, rfc_822 = read_source(JSONL)

    assert plain_date.published == datetime(2024, 5, 4)
    assert iso_with_offset.published == datetime(2024, 5, 11, 5, 30)
    assert rfc_822.published == datetime(2024, 5, 18, 8, 0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"id": "a", "text": "x", ', "not valid JSON"),
        ('["a", "x"]', "a list, not a JSON object"),
        ('{"text": "x"}', 'missing "id"'),
        ('{"id": true, "text": "x"}', '"id" must be a string or an integer, not a boolean'),
        ('{"id": 1.5, "text": "x"}', '"id" must be a string or an integer, not a number'),
        ('{"id": "a"}', 'missing "text"'),
        ('{"id": "a", "text": "   "}', '"text" is empty'),
        ('{"id": "a", "text": 7}', '"text" must be a string, not a number'),
        ('{"id": "a", "text": "x", "title": ["t"]}', '"title" must be a string, not a list'),
        (
            '{"id": "a", "text": "x", "published": "xyz"}',
            "bad published date 'xyz': use YYYY-MM-DD or ISO 8601",
        ),
    ],
)
def test_a_bad_jsonl_line_fails_the_whole_file_naming_file_and_line(
    tmp_path: Path, line: str, expected: str
) -> None:
    good = '{"id": "good", "text": "A good line."}'
    source = write(tmp_path / "items.jsonl", f"{good}\n\n{line}\n{good.replace('good', 'also')}\n")

    with pytest.raises(InputError) as caught:
        read_source(source)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{source}:3: ")
    assert expected in message


def test_jsonl_id_used_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    source = write(tmp_path / "items.jsonl", '{"id": 1, "text": "a"}\n{"id": "1", "text": "b"}\n')

    with pytest.raises(InputError) as caught:
        read_source(source)

    assert str(caught.value) == (
        f"{source}:2: id '1' is already used on line 1: give each line its own id"
    )


def test_skip_bad_keeps_the_good_jsonl_lines_and_logs_the_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write(
        tmp_path / "items.ndjson",
        '{"id": "a", "text": "First."}\nnot json\n{"id": "b", "text": "Second."}\n',
    )
    caplog.set_level(logging.INFO, logger="kbase")

    documents = read_source(source, skip_bad=True)

    assert [d.doc_id for d in documents] == ["a", "b"]
    assert f"{source}:2: not valid JSON" in caplog.text


def test_skip_bad_with_no_good_jsonl_line_left_is_still_an_error(tmp_path: Path) -> None:
    source = write(tmp_path / "items.jsonl", "nope\nnope again\n")

    with pytest.raises(InputError, match="has no valid lines"):
        read_source(source, skip_bad=True)


def test_jsonl_that_is_not_utf8_names_the_byte_offset_and_line(tmp_path: Path) -> None:
    source = write(
        tmp_path / "items.jsonl", b'{"id": 1, "text": "ok"}\n{"id": 2, "text": "\xff"}\n'
    )

    with pytest.raises(InputError) as caught:
        read_source(source)

    assert str(caught.value) == (
        f"{source} is not valid UTF-8 (byte 0xff at offset 43, line 2): convert it to UTF-8"
    )


# --- Text and Markdown -----------------------------------------------------------------


def test_markdown_keeps_the_text_as_is_and_takes_the_first_heading_as_title() -> None:
    (document,) = read_source(MARKDOWN)

    assert document.text == Path(MARKDOWN).read_text(encoding="utf-8")
    assert document.title == "Lantern festival returns to the old quay"
    assert document.source == MARKDOWN
    assert document.url is None
    assert document.published is None


def test_text_and_markdown_ids_are_the_content_hash() -> None:
    (document,) = read_source(MARKDOWN)

    assert document.doc_id == document.content_hash
    assert document.doc_id.startswith("sha256:")


def test_markdown_underlined_heading_is_a_title(tmp_path: Path) -> None:
    source = write(tmp_path / "notes.markdown", "Harbour notes\n=============\n\nCalm seas.\n")

    assert read_source(source)[0].title == "Harbour notes"


def test_markdown_without_a_heading_takes_the_first_line_as_title(tmp_path: Path) -> None:
    source = write(tmp_path / "notes.md", "\n\n  Calm seas all week.  \nNothing else.\n")

    assert read_source(source)[0].title == "Calm seas all week."


def test_plain_text_title_is_the_first_line_cut_to_200_characters(tmp_path: Path) -> None:
    long_line = "word " * 100
    source = write(tmp_path / "notes.txt", f"# not a heading in .txt\n{long_line}")
    long_source = write(tmp_path / "long.txt", long_line)

    assert read_source(source)[0].title == "# not a heading in .txt"
    title = read_source(long_source)[0].title
    assert title is not None
    assert len(title) == 200


def test_text_that_is_only_whitespace_is_an_empty_file_error(tmp_path: Path) -> None:
    source = write(tmp_path / "blank.txt", "  \n\n\t\n")

    with pytest.raises(InputError) as caught:
        read_source(source)

    assert str(caught.value) == (
        f"{source} is empty: give a feed, JSONL, text, Markdown or HTML file with some text in it"
    )


# --- HTML ------------------------------------------------------------------------------


def test_html_page_gives_its_main_text_without_menus_scripts_or_footer() -> None:
    (document,) = read_source(HTML)

    assert "The community orchard on Quarry Road planted its hundredth tree" in document.text
    assert "only sturdy boots." in document.text
    assert "Weather" not in document.text
    assert "not-text" not in document.text
    assert "All rights reserved" not in document.text
    assert "\n\n" in document.text  # paragraphs stay apart


def test_html_page_title_url_and_date_come_from_its_metadata() -> None:
    (document,) = read_source(HTML)

    assert document.title == "Community orchard plants its hundredth tree"
    assert document.url == "https://valleypost.example/news/orchard-hundredth-tree"
    assert document.published == datetime(2024, 6, 8, 8, 0)  # 10:00 at +02:00
    assert document.doc_id == document.content_hash


def test_short_html_page_falls_back_to_all_visible_text(tmp_path: Path) -> None:
    page = write(
        tmp_path / "short.htm",
        "<html><head><title>Notice</title><script>var x = 1;</script></head>"
        "<body><p>Pool closed Monday.</p><p>Reopens Tuesday.</p></body></html>",
    )

    (document,) = read_source(page)

    assert document.text == "Pool closed Monday.\n\nReopens Tuesday."
    assert document.title == "Notice"


def test_html_page_without_text_is_an_error(tmp_path: Path) -> None:
    page = write(tmp_path / "empty.html", "<html><body><script>track()</script></body></html>")

    with pytest.raises(InputError) as caught:
        read_source(page)

    assert str(caught.value) == f"{page} has no readable text: give a page with some text in it"


def test_html_page_in_a_declared_legacy_encoding_is_decoded(tmp_path: Path) -> None:
    page = write(
        tmp_path / "page.html",
        '<html><head><meta charset="iso-8859-1"></head><body><p>Crème brûlée night at the '
        "harbour café.</p></body></html>".encode("latin-1"),
    )

    assert read_source(page)[0].text == "Crème brûlée night at the harbour café."


def test_html_page_that_is_not_valid_utf8_is_refused(tmp_path: Path) -> None:
    page = write(tmp_path / "page.html", b"<html><body><p>caf\xe9</p></body></html>")

    with pytest.raises(InputError) as caught:
        read_source(page)

    message = str(caught.value)
    assert "\n" not in message
    assert "not valid UTF-8 (byte 0xe9 at offset 18, line 1): convert it to UTF-8" in message


def test_html_page_declaring_entities_is_refused_like_a_feed(tmp_path: Path) -> None:
    page = write(
        tmp_path / "page.html",
        '<!DOCTYPE html [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
        "<html><body><p>&secret;</p></body></html>",
    )

    with pytest.raises(InputError, match="declares XML entities"):
        read_source(page)


def test_html_fragment_to_text_keeps_line_breaks_and_preformatted_text() -> None:
    fragment = "<p>One <b>bold</b>\n  word<br>next line</p><pre>  a  b\n  c</pre><!-- hidden -->end"

    assert html_to_text(fragment) == "One bold word\nnext line\n\n  a  b\n  c\n\nend"


# --- Sniffing files without a known extension ------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected_text"),
    [
        (ONE_ITEM_RSS.decode(), "The harbour office printed this year's tide tables."),
        ('\n{"id": "j1", "text": "From JSON lines."}\n', "From JSON lines."),
        ("<!DOCTYPE html><html><body><p>From a page.</p></body></html>", "From a page."),
        ("Just some words.\n", "Just some words.\n"),
    ],
    ids=["feed", "jsonl", "html", "text"],
)
def test_file_with_an_unknown_extension_is_typed_by_its_content(
    tmp_path: Path, content: str, expected_text: str
) -> None:
    source = write(tmp_path / "download.dat", content)

    assert [d.text for d in read_source(source)] == [expected_text]


def test_extension_wins_over_content(tmp_path: Path) -> None:
    source = write(tmp_path / "looks-like-json.txt", '{"id": "x", "text": "y"}\n')

    (document,) = read_source(source)

    assert document.text == '{"id": "x", "text": "y"}\n'
    assert document.doc_id == document.content_hash


# --- File checks -----------------------------------------------------------------------


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.md")

    with pytest.raises(InputError) as caught:
        read_source(missing)

    assert str(caught.value) == f"{missing} does not exist: check the path"


def test_file_over_max_bytes_is_an_error_with_size_limit_and_option(tmp_path: Path) -> None:
    source = write(tmp_path / "big.txt", "x" * 300)

    with pytest.raises(InputError) as caught:
        read_source(source, max_bytes=100)

    assert str(caught.value) == (
        f"{source} is too big (300 bytes; the limit is 100 bytes): raise the limit with --max-bytes"
    )


def test_default_size_limit_is_20_mib() -> None:
    assert DEFAULT_MAX_BYTES == 20 * 1024 * 1024


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    source = write(tmp_path / "empty.jsonl", b"")

    with pytest.raises(InputError, match="is empty"):
        read_source(source)


def test_file_with_nul_bytes_looks_binary(tmp_path: Path) -> None:
    source = write(tmp_path / "x.bin", b"some text\x00\x01\x02 more")

    with pytest.raises(InputError) as caught:
        read_source(source)

    assert str(caught.value) == (
        f"{source} looks binary (NUL bytes): give a feed, JSONL, text, Markdown or HTML file"
    )


def test_known_binary_format_is_refused_even_with_a_text_extension(tmp_path: Path) -> None:
    source = write(tmp_path / "report.md", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj")

    with pytest.raises(InputError, match=r"looks binary \(a PDF file\)"):
        read_source(source)


def test_text_that_is_not_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    source = write(tmp_path / "notes.txt", b"first line\nsecond \xe9t\xe9 line\n")

    with pytest.raises(InputError) as caught:
        read_source(source)

    assert str(caught.value) == (
        f"{source} is not valid UTF-8 (byte 0xe9 at offset 18, line 2): convert it to UTF-8"
    )


def test_utf16_text_is_refused_with_a_conversion_hint(tmp_path: Path) -> None:
    source = write(tmp_path / "notes.txt", "Tide tables".encode("utf-16"))

    with pytest.raises(InputError, match="is UTF-16 or UTF-32 text: convert it to UTF-8"):
        read_source(source)


def test_utf8_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    source = write(tmp_path / "notes.txt", b"\xef\xbb\xbfHarbour notes\n")

    assert read_source(source)[0].text == "Harbour notes\n"


# --- Folders ---------------------------------------------------------------------------


def test_folder_reads_every_known_file_in_sorted_order() -> None:
    documents = read_source(str(DATA))

    assert [Path(d.source).name for d in documents] == [
        "hillside-radio.rdf",
        "lantern-festival.md",
        *["market-reports.jsonl"] * 3,
        *["millbrook-gazette.rss"] * 3,
        "orchard-article.html",
        *["riverside-council.atom"] * 2,
    ]
    assert documents[0].source == os.path.join(str(DATA), "hillside-radio.rdf")


def test_folder_walk_is_recursive_and_skips_hidden_and_unknown_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "b.txt", "B")
    write(tmp_path / "a" / "inner.md", "A inner")
    write(tmp_path / "a" / "z.txt", "A z")
    write(tmp_path / ".hidden.txt", "hidden")
    write(tmp_path / ".git" / "notes.txt", "hidden folder")
    write(tmp_path / "photo.jpeg", "not read")
    caplog.set_level(logging.INFO, logger="kbase")

    documents = read_source(str(tmp_path))

    assert [d.text for d in documents] == ["B", "A inner", "A z"]
    assert [d.source for d in documents] == [
        str(tmp_path / "b.txt"),
        str(tmp_path / "a" / "inner.md"),
        str(tmp_path / "a" / "z.txt"),
    ]
    assert "photo.jpeg: unknown file type" in caplog.text


def test_folder_with_a_symlink_loop_reads_each_file_once(tmp_path: Path) -> None:
    write(tmp_path / "top" / "story.txt", "Once.")
    (tmp_path / "top" / "sub").mkdir()
    (tmp_path / "top" / "sub" / "back-to-top").symlink_to(tmp_path / "top")
    (tmp_path / "top" / "again.txt").symlink_to(tmp_path / "top" / "story.txt")

    documents = read_source(str(tmp_path / "top"))

    assert [d.text for d in documents] == ["Once."]


def test_folder_without_known_files_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "image.png", b"\x89PNG\r\n\x1a\n")

    with pytest.raises(InputError) as caught:
        read_source(str(tmp_path))

    assert str(caught.value) == f"no feed, JSONL, text, Markdown or HTML files in {tmp_path}"


def test_one_bad_file_fails_the_whole_folder(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "Fine.")
    bad = write(tmp_path / "b.jsonl", "not json\n")

    with pytest.raises(InputError) as caught:
        read_source(str(tmp_path))

    assert str(caught.value).startswith(f"{bad}:1: not valid JSON")


def test_skip_bad_leaves_out_unreadable_files_of_a_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "a.txt", "Fine.")
    bad = write(tmp_path / "b.txt", b"\x00\x00")
    caplog.set_level(logging.INFO, logger="kbase")

    documents = read_source(str(tmp_path), skip_bad=True)

    assert [d.text for d in documents] == ["Fine."]
    assert f"{bad} looks binary" in caplog.text


# --- The --id option -------------------------------------------------------------------


def test_given_id_replaces_the_id_of_a_one_document_source() -> None:
    (document,) = read_source(MARKDOWN, doc_id="lantern-2024")

    assert document.doc_id == "lantern-2024"
    assert document.title == "Lantern festival returns to the old quay"


def test_given_id_on_a_source_with_several_documents_is_an_error() -> None:
    with pytest.raises(InputError) as caught:
        read_source(JSONL, doc_id="one-id")

    assert str(caught.value) == f"--id needs a source with one document; {JSONL} has 3"


# --- Standard input --------------------------------------------------------------------


def test_stdin_is_read_when_the_source_is_a_dash() -> None:
    stdin = io.BytesIO(b"# Night market\n\nStalls open until midnight on Fridays.\n")

    (document,) = read_source("-", stdin=stdin)

    assert document.source == "-"
    assert document.title == "Night market"
    assert document.doc_id == document.content_hash


def test_stdin_is_typed_by_its_content() -> None:
    feed = read_source("-", stdin=io.BytesIO(ONE_ITEM_RSS))
    jsonl = read_source("-", stdin=io.BytesIO(b'{"id": 5, "text": "Five."}\n'))

    assert [d.doc_id for d in feed] == ["quay-1"]
    assert [d.doc_id for d in jsonl] == ["5"]


def test_empty_stdin_is_an_error() -> None:
    with pytest.raises(InputError) as caught:
        read_source("-", stdin=io.BytesIO(b""))

    assert str(caught.value).startswith("standard input is empty")


def test_stdin_over_max_bytes_is_an_error() -> None:
    with pytest.raises(InputError, match=r"standard input is too big .* --max-bytes"):
        read_source("-", stdin=io.BytesIO(b"x" * 50), max_bytes=10)


# --- Dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-04", datetime(2024, 5, 4)),
        ("2024-05-04T10:00:00", datetime(2024, 5, 4, 10, 0)),
        ("2024-05-04T10:00:00Z", datetime(2024, 5, 4, 10, 0)),
        ("2024-05-04T10:00:00+02:00", datetime(2024, 5, 4, 8, 0)),
        ("2024-05-04 10:00:00-05:00", datetime(2024, 5, 4, 15, 0)),
        ("Sat, 04 May 2024 10:00:00 +0200", datetime(2024, 5, 4, 8, 0)),
        ("Sat, 04 May 2024 10:00:00 GMT", datetime(2024, 5, 4, 10, 0)),
        ("next Tuesday", None),
        ("2024-13-45", None),
        ("", None),
    ],
)
def test_dates_become_naive_utc_or_none(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


# --- URLs ------------------------------------------------------------------------------

PAGE_HTML = b"""<!DOCTYPE html><html><head><title>Quay page</title></head>
<body><p>The harbour office opens at nine on weekdays.</p></body></html>"""

FEED_LINKING_BACK = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>L</title>
<item><guid>linked</guid><link>/counted</link><description>See the link.</description></item>
</channel></rss>"""


class NewsHandler(BaseHTTPRequestHandler):
    """A tiny site: each path below shows one way a download can go."""

    requests_seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests_seen.append(self.path)
        # The client may give up early (timeouts, size caps): that is expected here.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.answer()

    def answer(self) -> None:
        if self.path == "/feed.xml":
            self.send_body(ONE_ITEM_RSS, "application/rss+xml")
        elif self.path == "/feed-as-text-xml":
            self.send_body(ONE_ITEM_RSS, "text/xml")
        elif self.path == "/feed-linking-back.xml":
            self.send_body(FEED_LINKING_BACK, "application/rss+xml")
        elif self.path == "/page":
            self.send_body(PAGE_HTML, "text/html; charset=utf-8")
        elif self.path == "/notes.txt":
            self.send_body(b"# Not a heading in plain text\nSecond line.\n", "text/plain")
        elif self.path == "/items":
            self.send_body(b'{"id": "web-1", "text": "From the web."}\n', "application/x-ndjson")
        elif self.path.startswith("/hop/"):
            left = int(self.path.removeprefix("/hop/"))
            if left == 0:
                self.send_body(ONE_ITEM_RSS, "application/rss+xml")
            else:
                self.redirect(f"/hop/{left - 1}")
        elif self.path == "/loop":
            self.redirect("/loop")
        elif self.path == "/to-file":
            self.redirect("file:///etc/passwd")
        elif self.path == "/big":
            self.send_body(b"x" * 5000, "text/plain")
        elif self.path == "/big-without-length":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"y" * 100)
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(1.5)
            self.send_body(ONE_ITEM_RSS, "application/rss+xml")
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"z" * 5)
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self.send_error(404, "Not Found")

    def send_body(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output quiet


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The base URL of a NewsHandler server on 127.0.0.1, with proxies switched off."""
    no_proxies(monkeypatch)
    NewsHandler.requests_seen = []
    with local_server(NewsHandler) as url:
        yield url


def test_url_feed_is_downloaded_and_parsed(site: str) -> None:
    url = f"{site}/feed.xml"

    (document,) = read_source(url)

    assert document.doc_id == "quay-1"
    assert document.source == url
    assert document.url == "https://quay.example/tides"


def test_url_with_a_vague_content_type_is_typed_by_content(site: str) -> None:
    (document,) = read_source(f"{site}/feed-as-text-xml")

    assert document.doc_id == "quay-1"


def test_url_html_page_gets_the_page_address_as_url(site: str) -> None:
    (document,) = read_source(f"{site}/page")

    assert document.text == "The harbour office opens at nine on weekdays."
    assert document.title == "Quay page"
    assert document.url == f"{site}/page"


def test_url_plain_text_and_jsonl_are_read_by_content_type(site: str) -> None:
    (text,) = read_source(f"{site}/notes.txt")
    (item,) = read_source(f"{site}/items")

    assert text.title == "# Not a heading in plain text"
    assert text.url == f"{site}/notes.txt"
    assert item.doc_id == "web-1"


def test_links_inside_a_downloaded_feed_are_never_fetched(site: str) -> None:
    (document,) = read_source(f"{site}/feed-linking-back.xml")

    assert document.doc_id == "linked"
    assert NewsHandler.requests_seen == ["/feed-linking-back.xml"]


def test_url_returning_404_is_a_fetch_error(site: str) -> None:
    with pytest.raises(FetchError) as caught:
        read_source(f"{site}/no-such-page")

    assert str(caught.value) == (
        f"could not fetch {site}/no-such-page: HTTP 404 Not Found; check the address"
    )


def test_up_to_five_redirects_are_followed(site: str) -> None:
    (document,) = read_source(f"{site}/hop/5")

    assert document.doc_id == "quay-1"


def test_more_than_five_redirects_is_a_fetch_error(site: str) -> None:
    with pytest.raises(FetchError) as caught:
        read_source(f"{site}/hop/6")

    assert str(caught.value) == (
        f"could not fetch {site}/hop/6: more than 5 redirects; check the address"
    )


def test_redirect_loop_is_a_fetch_error(site: str) -> None:
    with pytest.raises(FetchError, match="more than 5 redirects"):
        read_source(f"{site}/loop")

    assert len(NewsHandler.requests_seen) == 6


def test_redirect_to_a_file_url_is_refused(site: str) -> None:
    with pytest.raises(FetchError) as caught:
        read_source(f"{site}/to-file")

    message = str(caught.value)
    assert "\n" not in message
    assert "redirects to file:///etc/passwd" in message
    assert "only http and https redirects are followed" in message


def test_download_over_max_bytes_is_refused(site: str) -> None:
    with pytest.raises(FetchError) as caught:
        read_source(f"{site}/big", max_bytes=1000)

    assert str(caught.value) == (
        f"{site}/big is too big (5000 bytes; the limit is 1000 bytes): "
        "raise the limit with --max-bytes"
    )


def test_download_without_a_length_is_capped_while_streaming(site: str) -> None:
    with pytest.raises(FetchError, match=r"is too big \(more than that; the limit is 1000 bytes"):
        read_source(f"{site}/big-without-length", max_bytes=1000)


def test_slow_server_is_a_timeout_fetch_error(site: str) -> None:
    started = time.monotonic()

    with pytest.raises(FetchError) as caught:
        read_source(f"{site}/slow", timeout=0.5)

    assert time.monotonic() - started < 1.4
    assert str(caught.value) == (
        f"could not fetch {site}/slow: no complete answer within 0.5 s; "
        "check the address or allow more time"
    )


def test_download_that_trickles_in_is_cut_at_the_timeout(site: str) -> None:
    started = time.monotonic()

    with pytest.raises(FetchError, match=r"no complete answer within 0\.5 s"):
        read_source(f"{site}/drip", timeout=0.5)

    assert time.monotonic() - started < 1.5


def test_unreachable_server_is_a_connection_fetch_error(monkeypatch: pytest.MonkeyPatch) -> None:
    no_proxies(monkeypatch)
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(FetchError) as caught:
        read_source(f"http://127.0.0.1:{port}/feed.xml", timeout=2)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"could not fetch http://127.0.0.1:{port}/feed.xml: connection")


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "FILE:///etc/passwd", "file:/etc/passwd", "ftp://ftp.example/feed.xml"],
)
def test_urls_other_than_http_and_https_are_refused(url: str) -> None:
    with pytest.raises(InputError) as caught:
        read_source(url)

    message = str(caught.value)
    assert not isinstance(caught.value, FetchError)
    assert "\n" not in message
    assert "URLs are not supported: give an http:// or https:// URL, or a local path" in message


def test_url_without_a_host_is_refused() -> None:
    with pytest.raises(InputError, match="has no host name"):
        read_source("http:///feed.xml")


def test_password_in_a_url_is_not_repeated_in_messages(site: str) -> None:
    with pytest.raises(FetchError) as caught:
        read_source(site.replace("http://", "http://reader:s3cret@") + "/missing")

    assert "s3cret" not in str(caught.value)


def test_a_user_name_and_password_in_a_url_are_not_stored_with_its_documents(site: str) -> None:
    (page,) = read_source(site.replace("http://", "http://reader:s3cret@") + "/page")

    assert (page.source, page.url) == (f"{site}/page", f"{site}/page")
