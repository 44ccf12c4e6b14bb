"""The public Python API: what ``from kbase import ...`` offers, and that importing
the package stays light."""

from __future__ import annotations

import subprocess
import sys

import kbase


def test_all_lists_exactly_the_public_names_sorted() -> None:
    public = {name for name in kbase._EXPORTS if not name.startswith("_")}
    assert kbase.__all__ == sorted(public)


def test_every_exported_name_resolves_to_the_object_of_its_module() -> None:
    import importlib

    for name in kbase.__all__:
        module = importlib.import_module(kbase._EXPORTS[name])
        assert getattr(kbase, name) is getattr(module, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        kbase.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("kbase.no_such_thing resolved")


def test_importing_the_package_loads_no_database_index_or_model_library() -> None:
    code = (
        "import sys, kbase;"
        "print([m for m in ('sqlalchemy', 'faiss', 'torch', 'llama_cpp', 'httpx')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_facade_and_settings_import_from_the_package() -> None:
    code = "from kbase import KnowledgeBase, Settings; print(KnowledgeBase.__name__, Settings())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("KnowledgeBase Settings(")
