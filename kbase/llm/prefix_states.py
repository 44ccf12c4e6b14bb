"""Saved model states of prompt prefixes, on disk: a folder of files named by a hash.

The shared prefix of kbase's prompts (instructions and few-shot examples, ~860 tokens)
is the same for every document, so the first document of each process would
otherwise recompute it. A backend saves the model state of a prefix here, under the
hash of the prefix's text and of everything that shapes the state (model, context
size, runtime version), and a later process loads it instead.

A saved state holds nothing but its prefix. The prefix shows few-shot examples, which
can come from users' documents, so whoever changes the examples (a forget, a
correction) calls :meth:`PrefixStates.clear`: no state derived from a forgotten
document survives it; and every write first checks, with :meth:`PrefixStates.follow`,
that the pool is still the one the states were saved under. Files are written
atomically and kept few (least recently used go first); an unreadable file is
deleted and recomputed, never trusted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from kbase.hashing import canonical_json, sha256_hex

#: What a knowledge base calls its folder of saved prefix states.
FOLDER_NAME = "model-states"
SUFFIX = ".state"
#: The signature of the few-shot pool the saved states showed.
EXAMPLES_FILE = "examples"
#: Enough for one model's shared prefix and the answer prompts, a few times over.
DEFAULT_MAX_FILES = 8


def state_key(**identity: object) -> str:
    """The file key of a state: a hash of everything that shaped it."""
    return sha256_hex(canonical_json(identity))


class PrefixStates:
    """A folder of saved prefix states (created on first write)."""

    def __init__(self, folder: Path, *, max_files: int = DEFAULT_MAX_FILES) -> None:
        self.folder = folder
        self.max_files = max_files

    def _path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"bad state key {key!r}")
        return self.folder / f"{key}{SUFFIX}"

    def load(self, key: str) -> bytes | None:
        """The state saved under ``key``, or None."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        os.utime(path)  # recently used: kept longest
        return data

    def save(self, key: str, data: bytes) -> None:
        """Save ``data`` under ``key`` atomically, then drop the least recently used
        files past ``max_files``."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._trim()

    def discard(self, key: str) -> None:
        """Delete the state under ``key`` (one that would not load)."""
        self._path(key).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        """The saved keys, least recently used first."""
        if not self.folder.is_dir():
            return []
        files = sorted(self.folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
        return [p.name.removesuffix(SUFFIX) for p in files]

    def clear(self) -> None:
        """Delete every saved state (the examples they show have changed)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def follow(self, examples: str) -> None:
        """Keep the states only while ``examples`` (a signature of the few-shot pool)
        is the one they were saved under: another host sharing the database may have
        changed the pool since."""
        try:
            if (self.folder / EXAMPLES_FILE).read_text() == examples:
                return
        except OSError:
            pass
        self.clear()
        self.mark(examples)

    def mark(self, examples: str) -> None:
        """Record that the saved states show the examples of pool ``examples``."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder / EXAMPLES_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(examples)

    def _trim(self) -> None:
        keys = self.keys()
        for key in keys[: max(0, len(keys) - self.max_files)]:
            self.discard(key)
