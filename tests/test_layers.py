"""The layers import downward only (docs: DESIGN.md, "The layers import downward only").

Every module of the package is parsed with ``ast`` (imports inside functions included) and each
``homeloop`` import is checked against the layer of the importing module: a module may import its
own layer and the layers below, never one above. Nothing imports the demo or the command line but
the command line. Whether capabilities reach into each other's internals is not checked here.
A new top-level module or package must be placed in :data:`LAYERS`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import homeloop

PACKAGE = Path(homeloop.__file__).resolve().parent

#: bottom first; a module may import homeloop modules of its own layer or lower ones
LAYERS: list[set[str]] = [
    # the foundations: errors, the workspace, the training loop, the artefact store, storage, data, the world
    {"__init__", "errors", "workspace", "training", "artifacts", "data", "db", "datasets", "adapters", "world"},
    {"nlu"},
    # the capabilities
    {"selflearn", "home", "privacy", "graceful", "federated", "fairness"},
    # the assistant's models in service, the HTML report
    {"serving", "report"},
    {"demo"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str:
    """``homeloop.selflearn.replay`` -> ``selflearn``; ``homeloop`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if "vendor" in rel.parts or "migrations" in rel.parts:
            continue
        parts = ["homeloop", *rel.with_suffix("").parts]
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported homeloop module) for every import in the file, relative ones resolved."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "homeloop":  # from homeloop import training
                found += [(node.lineno, f"homeloop.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "homeloop" or name.startswith("homeloop.")]


MODULES = _modules()


def test_every_top_level_module_has_a_layer() -> None:
    tops = {_top(module) for module, _ in MODULES}
    assert tops - set(RANK) == set(), "place the new module or package in LAYERS (tests/test_layers.py)"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_imports_go_downward_only(module: str, path: Path) -> None:
    mine = RANK.get(_top(module))
    if mine is None:
        pytest.skip(f"{module} has no layer (see test_every_top_level_module_has_a_layer)")
    upward = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name} ({_top(name)} is above {_top(module)})"
        for line, name in _imports(module, path)
        if _top(name) != "__init__" and RANK.get(_top(name), len(LAYERS)) > mine
    ]
    assert not upward, "\n".join(upward)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    """A capability importing the demo, directly, lazily or relatively, is caught."""
    path = tmp_path / "report.py"
    path.write_text(
        "from homeloop.nlu import evaluate\n"
        "def f():\n"
        "    from homeloop.demo import run_demo\n"
        "    import homeloop.cli\n"
        "    from ..serving import assistant_nlu\n"
        "    from homeloop import demo\n"
    )
    names = [name for _, name in _imports("homeloop.graceful.report", path)]
    assert names == ["homeloop.nlu", "homeloop.demo", "homeloop.cli", "homeloop.serving", "homeloop.demo"]
    assert [RANK[_top(n)] > RANK["graceful"] for n in names] == [False, True, True, True, True]
