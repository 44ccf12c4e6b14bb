"""Reading raw bytes safely: size caps, binary and encoding checks, and folder walks."""

from __future__ import annotations

import codecs
import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

from kbase.errors import InputError
from kbase.sources.kinds import kind_from_extension
from kbase.sources.messages import one_line

log = logging.getLogger("kbase")

#: How many leading bytes are searched for NUL bytes.
BINARY_PROBE_BYTES = 8 * 1024

_WHAT_TO_GIVE = "give a feed, JSONL, text, Markdown or HTML file"

#: Leading bytes of common binary formats, and their names.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed"),
    (b"BZh91AY&SY", "bzip2-compressed"),
    (b"\xfd7zXZ\x00", "xz-compressed"),
    (b"(\xb5/\xfd", "zstd-compressed"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ\x90\x00", "a Windows program"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document"),
    (b"OggS", "an Ogg media file"),
    (b"fLaC", "a FLAC audio file"),
    (b"\x00\x00\x01\x00", "an icon"),
    (b"wOFF", "a web font"),
    (b"wOF2", "a web font"),
)
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
_WIDE_PROBE_BYTES = 256
#: Encodings refused in markup, by codec name: UTF-7 can spell ``<!`` in plain letters
#: (``+ADwAIQ-``), so a DOCTYPE would pass unseen by byte-level checks; the wide ones
#: and Python's escape codecs are no way to write a feed or a page either.
_HIDING_ENCODINGS = frozenset(
    {
        "utf-7", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
        "unicode-escape", "raw-unicode-escape", "punycode", "idna",
    }
)  # fmt: skip


def too_big(name: str, size: int | None, max_bytes: int) -> InputError:
    """The error for an input over ``max_bytes``; ``size`` is ``None`` when it is not known."""
    amount = f"{size} bytes" if size is not None else "more than that"
    return InputError(
        f"{name} is too big ({amount}; the limit is {max_bytes} bytes): "
        "raise the limit with --max-bytes"
    )


def read_file(path: str, max_bytes: int) -> bytes:
    """The bytes of the file at ``path``, refusing a missing, empty, oversize or binary file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: check the path") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {one_line(exc.strerror or exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path} is a folder: read it as a folder source")
    _refuse_special(path, info.st_mode)
    if info.st_size > max_bytes:
        raise too_big(path, info.st_size, max_bytes)
    try:
        # Non-blocking, then checked again on the open file: a FIFO swapped in after the
        # stat must not block the read forever (no --timeout covers a local file).
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(descriptor, "rb") as handle:
            _refuse_special(path, os.fstat(handle.fileno()).st_mode)
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {one_line(exc.strerror or exc)}") from None
    return check_bytes(path, data, max_bytes)


def _refuse_special(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    what = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "a device"
    elif stat.S_ISSOCK(mode):
        what = "a socket"
    raise InputError(
        f"{path} is {what}, which kbase does not read: give a regular file, "
        "or - to read it from standard input"
    )


def read_stream(name: str, stream: BinaryIO, max_bytes: int) -> bytes:
    """Up to ``max_bytes`` from ``stream`` (standard input), checked like a file."""
    try:
        data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read {name}: {one_line(exc.strerror or exc)}") from None
    if not isinstance(data, bytes):
        raise InputError(f"cannot read {name}: it gives text, not bytes")
    return check_bytes(name, data, max_bytes)


def check_bytes(name: str, data: bytes, max_bytes: int) -> bytes:
    """``data`` unchanged if it is non-empty, within ``max_bytes`` and not binary."""
    if len(data) > max_bytes:
        raise too_big(name, None, max_bytes)
    if not data.strip():
        raise InputError(f"{name} is empty: {_WHAT_TO_GIVE} with some text in it")
    if data.startswith(_UTF16_32_BOMS) or _wide_text(data[:_WIDE_PROBE_BYTES]):
        raise InputError(f"{name} is UTF-16 or UTF-32 text: convert it to UTF-8")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise InputError(f"{name} looks binary ({what}): {_WHAT_TO_GIVE}")
    if b"\x00" in data[:BINARY_PROBE_BYTES]:
        raise InputError(f"{name} looks binary (NUL bytes): {_WHAT_TO_GIVE}")
    return data


def _wide_text(head: bytes) -> bool:
    """Whether ``head`` looks like UTF-16 or UTF-32 without a byte-order mark: ASCII
    written in those has NUL in (nearly) every other byte, and not in the rest."""
    half = len(head) // 2
    if half < 2:
        return False
    even, odd = head[0 : 2 * half : 2].count(0), head[1 : 2 * half : 2].count(0)
    nul, other = max(even, odd), min(even, odd)
    return nul * 10 >= half * 9 and other * 10 <= half * 6


def decode_utf8(name: str, data: bytes) -> str:
    """``data`` decoded as UTF-8 (a leading byte-order mark dropped), or a clear error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_encoding(name, data, exc, "UTF-8") from None


def decode_as(name: str, data: bytes, encoding: str) -> str:
    """``data`` decoded as ``encoding`` (a name it declares), or a clear error.

    A UTF-8 byte-order mark wins over the declared name.
    """
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    shown = one_line(encoding, 40)
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise InputError(
            f"{name} declares an unknown character encoding {shown!r}: convert it to UTF-8"
        ) from None
    if codec.name in _HIDING_ENCODINGS:
        raise InputError(
            f"{name} declares the {codec.name.upper()} encoding, which kbase refuses "
            "(it can hide markup): convert it to UTF-8"
        )
    try:
        return data.decode(codec.name)
    except UnicodeDecodeError as exc:
        raise bad_encoding(name, data, exc, codec.name.upper()) from None
    except (LookupError, UnicodeError):  # base64, zlib, ...: not a character encoding
        raise InputError(
            f"{name} declares {shown!r}, which is not a character encoding: convert it to UTF-8"
        ) from None


def bad_encoding(name: str, data: bytes, exc: UnicodeDecodeError, encoding: str) -> InputError:
    """The error for bytes that do not decode as ``encoding``, naming the offset and line."""
    offset = exc.start
    line = data.count(b"\n", 0, offset) + 1
    return InputError(
        f"{name} is not valid {encoding} (byte 0x{data[offset]:02x} at offset {offset}, "
        f"line {line}): convert it to UTF-8"
    )


def walk_folder(folder: str) -> list[str]:
    """The readable files under ``folder``, recursively, in sorted order.

    Hidden files and folders (names starting with ``.``) are skipped, as are files whose
    extension is not a known kind (logged). Symbolic links are followed, but a folder or
    file already seen through another path (a link loop, a second link) is skipped.
    """
    found: list[str] = []
    seen_dirs: set[str] = {os.path.realpath(folder)}
    seen_files: set[str] = set()
    # Depth first, in name order: a stack of folders still to list, last one on top.
    pending: list[str] = [folder]
    while pending:
        current = pending.pop()
        try:
            names = sorted(os.listdir(current))
        except OSError as exc:
            if current == folder:
                raise InputError(f"cannot read {folder}: {one_line(exc.strerror or exc)}") from None
            log.warning("skipping folder %s: %s", current, one_line(exc.strerror or exc))
            continue
        subfolders: list[str] = []
        for name in names:
            path = str(Path(current) / name)
            if name.startswith("."):
                log.info("skipping hidden %s", path)
                continue
            real = os.path.realpath(path)
            if os.path.isdir(path):
                if real in seen_dirs:
                    log.warning("skipping %s: a link to a folder already read (%s)", path, real)
                    continue
                seen_dirs.add(real)
                subfolders.append(path)
                continue
            if not os.path.isfile(path):
                log.warning("skipping %s: not a regular file (or a broken link)", path)
                continue
            if kind_from_extension(name) is None:
                log.info("skipping %s: unknown file type (by its extension)", path)
                continue
            if real in seen_files:
                log.info("skipping %s: the same file as one already read (%s)", path, real)
                continue
            seen_files.add(real)
            found.append(path)
        # Files of a folder come before its subfolders; subfolders in name order.
        pending.extend(reversed(subfolders))
    return found
