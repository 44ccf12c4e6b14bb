"""Where knowledge bases and model files live.

A knowledge base is one folder: ``--kb PATH``, else ``$KBASE_HOME``, else
``<user data dir>/kbase/default``. Model files assembled from packages go to
``$KBASE_CACHE``, else the user cache dir, never into a knowledge base.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def kb_folder(path: str | Path | None = None) -> Path:
    """The folder of the knowledge base to use."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("KBASE_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("kbase")) / "default"


def cache_folder() -> Path:
    """The folder for assembled model files and other caches."""
    env = os.environ.get("KBASE_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("kbase"))
