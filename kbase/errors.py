"""Every error kbase raises on purpose derives from :class:`KbaseError`.

The message of each is one line that names the problem and what to do about it;
the CLI prints it as is and exits non-zero.

    KbaseError
    ├── ConfigError          bad settings, unknown backend/strategy names, missing extras
    ├── InputError           a source that cannot be read (malformed, binary, too big, bad UTF-8)
    │   └── FetchError       an http(s) source that cannot be fetched
    ├── DocumentError        unknown document id, id clash without --replace
    ├── NotFoundError        unknown fact, example or other id
    ├── StoreError           the database or vector index cannot be opened or is inconsistent
    │   ├── DiskFull         the disk filled up while writing (nothing half-stored)
    │   └── LockTimeout      another writer holds the knowledge base
    └── ModelError           a model cannot be loaded or does not answer
        ├── ModelUnavailable the model server is down, slow or failing
        └── BadModelOutput   an answer that does not parse or fails its schema
"""

from __future__ import annotations

import errno
import re


class KbaseError(Exception):
    """Base of every error kbase raises on purpose."""


class ConfigError(KbaseError):
    """Settings are wrong or a needed optional dependency is missing."""


class InputError(KbaseError):
    """A source cannot be turned into documents."""


class FetchError(InputError):
    """A URL cannot be fetched."""


class DocumentError(KbaseError):
    """A document id is unknown or clashes with a stored one."""


class NotFoundError(KbaseError):
    """An id (fact, example, ...) does not exist."""


class StoreError(KbaseError):
    """The store cannot be opened or is inconsistent."""


class LockTimeout(StoreError):
    """Another process is writing to the knowledge base."""


class DiskFull(StoreError):
    """The disk (or the database's quota) filled up during a write."""


class ModelError(KbaseError):
    """A model cannot be loaded or used."""


class ModelUnavailable(ModelError):
    """A model server is unreachable, too slow or failing."""


class BadModelOutput(ModelError):
    """A model answer does not parse or does not fit its schema."""


def missing_extra(package: str, extra: str) -> ConfigError:
    """The error for an optional dependency that is not installed."""
    return ConfigError(
        f"{package} is not installed: install it with `pip install 'kbase[{extra}]'`"
    )


#: ``scheme://user:password@``: the part of a URL a message or a stored value must not show.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*):[^\s/@]*@")


#: A password given as a query parameter (``?password=...``, which libpq accepts).
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)[^&#\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``
    (``postgresql://kb:***@host/db``); the user name stays, to say who connects."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['key']}***", text)


def without_password(url: str) -> str:
    """``url`` with its password removed (``postgresql://kb@host/db``): what is stored,
    so the password comes from the environment (``$KBASE_DATABASE_URL``,
    ``$PGPASSWORD``, a password file) on every open."""
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}@", url)
    url = re.sub(r"([?&])password=[^&#\s]*&?", r"\1", url, flags=re.IGNORECASE)
    return url.rstrip("?&")


#: SQLSTATE of PostgreSQL's disk_full, and SQLite's message for SQLITE_FULL.
_DISK_FULL_SQLSTATE = "53100"
_DISK_FULL_WORDS = ("database or disk is full", "no space left on device")


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk is full:
    ENOSPC or EDQUOT from the system, SQLITE_FULL, PostgreSQL's disk_full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if getattr(current, "sqlstate", None) == _DISK_FULL_SQLSTATE:
            return True
        if any(words in str(current).lower() for words in _DISK_FULL_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False
