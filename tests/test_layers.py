"""The house: every module imports only from its own layer or the layers below it,
and no import cycle exists, counting imports under ``TYPE_CHECKING`` and inside
functions (see docs/design.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Layers from the bottom up, each a list of module prefixes.
LAYERS = [
    # leaves
    ["kbase.errors", "kbase.hashing", "kbase.config", "kbase.paths", "kbase.reports"],
    ["kbase.fewshot.example", "kbase.render"],
    # seams and stores
    ["kbase.llm", "kbase.embed", "kbase.index", "kbase.sources", "kbase.locking"],
    ["kbase.prompts", "kbase.store", "kbase.fewshot", "kbase.records", "kbase.vectors"],
    ["kbase.fingerprint"],
    # the runtime, the pipeline, the operations, the facade, the server, the CLI
    ["kbase.runtime"],
    ["kbase.pipeline"],
    ["kbase.ops"],
    ["kbase.kb", "kbase"],
    ["kbase.server"],
    ["cli"],
]


def _modules() -> dict[str, Path]:
    found = {"cli": ROOT / "cli.py"}
    for path in sorted((ROOT / "kbase").rglob("*.py")):
        if "migrations" in path.parts:
            continue  # alembic's scripts, loaded by alembic, not imported
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours an imported name is, or lives in (None: not ours)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """Every module of ours that ``module`` imports, anywhere in its code."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [_resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a.b import c` imports the module a.b.c if there is one, else a.b.
            found = [_resolve(f"{base}.{alias.name}") or _resolve(base) for alias in node.names]
        else:
            continue
        out |= {target for target in found if target is not None and target != module}
    return out


GRAPH = {module: imports_of(module) for module in MODULES}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def test_every_module_belongs_to_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_modules_import_only_from_their_layer_or_below() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_no_module_below_the_facade_imports_it() -> None:
    below = [m for m in MODULES if layer_of(m) < layer_of("kbase.kb")]
    assert [m for m in below if "kbase.kb" in GRAPH[m] or "cli" in GRAPH[m]] == []


def test_there_is_no_import_cycle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        path.append(module)
        for target in sorted(GRAPH[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(MODULES):
        visit(module)


def test_the_checker_sees_function_local_and_type_checking_imports() -> None:
    """The graph is built from every import statement, not only the top-level ones:
    cli imports the facade only inside a function and under TYPE_CHECKING."""
    assert "kbase.kb" in GRAPH["cli"]
