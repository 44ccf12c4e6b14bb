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
    │   └── LockTimeout      another writer holds the knowledge base
    └── ModelError           a model cannot be loaded or does not answer
        ├── ModelUnavailable the model server is down, slow or failing
        └── BadModelOutput   an answer that does not parse or fails its schema
"""

from __future__ import annotations


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
