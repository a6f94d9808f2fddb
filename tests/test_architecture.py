"""The package's shape: no import cycles, inference never reaches training code, no private
names used across modules, and a light ``import automix``.

Imports are read from the source (every ``import``, also those inside functions, which are
cycles all the same; not those under ``if TYPE_CHECKING:``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "automix"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The automix module an imported dotted name lives in (a submodule, or its package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(module: str) -> tuple[set[str], list[str]]:
    """The automix modules ``module`` imports, and the private names it takes from them."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and _is_type_checking(node) for n in ast.walk(node)}
    edges, private = set(), []
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            edges |= {_resolve(a.name) for a in node.names if a.name.startswith("automix")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if not base.startswith("automix"):
                continue
            for alias in node.names:
                target = _resolve(f"{base}.{alias.name}")
                edges.add(target if target and target.endswith(alias.name) else _resolve(base))
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    private.append(f"{base}.{alias.name}")
    edges.discard(None)
    edges.discard(module)
    return edges, private


GRAPH = {m: _imports(m)[0] for m in MODULES}


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycles() -> None:
    cycles = sorted(m for m in MODULES if m != "automix" and m in _reachable(m))
    assert not cycles, f"modules that import themselves through others: {cycles}"


def test_inference_never_imports_training() -> None:
    for module in MODULES:
        if module.startswith("automix.model"):
            reached = {m for m in _reachable(module) if m.startswith("automix.training")}
            assert not reached, f"{module} reaches {sorted(reached)}"


def test_no_private_names_across_modules() -> None:
    taken = {m: _imports(m)[1] for m in MODULES}
    assert not {m: p for m, p in taken.items() if p}
    for module, path in MODULES.items():  # module._name on an imported automix module
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and (n.module or "").startswith("automix") for a in n.names}
        names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.Import) for a in n.names if a.name.startswith("automix")}
        used = sorted({f"{n.value.id}.{n.attr}" for n in ast.walk(tree)
                       if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                       and n.value.id in names and n.attr.startswith("_")
                       and not n.attr.startswith("__")})
        assert not used, f"{module} uses private names of other modules: {used}"


@pytest.mark.parametrize("statement,absent", [
    ("import automix", ("numpy", "torch", "automix.mastering")),
    ("import automix.cli", ("numpy", "torch")),
    ("from automix.mastering import pipeline", ("torch", "automix.training")),
    ("from automix.model import predict", ("automix.training", "torch", "librosa")),
])
def test_imports_stay_light(statement: str, absent: tuple[str, ...]) -> None:
    code = f"import sys; {statement}; print(','.join(m for m in {absent!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "", f"{statement} imported {done.stdout.strip()}"


def test_the_api_names_resolve() -> None:
    import automix

    for name in automix.__all__:
        assert getattr(automix, name) is not None
    assert set(automix.__all__) == set(automix._API)
