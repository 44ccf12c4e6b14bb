"""Canonical JSON and content hashes (the algorithm is part of every stored hash)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: str | bytes) -> str:
    """Plain hex sha256 of text (UTF-8) or bytes."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def content_hash(value: Any) -> str:
    """``sha256:<hex>`` of a string's UTF-8 bytes or of any other value's canonical JSON."""
    text = value if isinstance(value, str) else canonical_json(value)
    return "sha256:" + sha256_hex(text)
