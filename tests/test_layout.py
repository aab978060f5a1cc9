"""The package's layout keeps its architecture: who may import whom, read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import requests_refresh

PACKAGE = Path(requests_refresh.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, *, in_functions: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run: not those for type checking only.

    With ``in_functions`` False, only those that run when the module is imported.
    """
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if not in_functions and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _imports(name: str, *, in_functions: bool) -> set[str]:
    """The modules, of the package or not, that ``name`` imports."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _import_nodes(tree, in_functions=in_functions):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        target = node.module or ""
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
        submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
        # ``from package import module`` imports the module; a package's own __init__
        # runs whenever any of its modules is imported, so it is no edge of its own.
        found |= submodules or {target}
    return found - {name}


def _own_imports(name: str, *, in_functions: bool) -> set[str]:
    return {module for module in _imports(name, in_functions=in_functions) if module in MODULES}


IMPORTS = {name: _own_imports(name, in_functions=True) for name in MODULES}
LOADS = {name: _own_imports(name, in_functions=False) for name in MODULES}


def test_no_two_modules_import_each_other_at_run_time() -> None:
    """A module never imports one that imports it back (imports for type checking aside)."""
    pairs = sorted(
        (a, b) for a, targets in IMPORTS.items() for b in targets if a < b and a in IMPORTS[b]
    )
    assert pairs == []


def _loaded_by(start: str) -> set[str]:
    """The package's modules that importing ``start`` (a module or a package) loads."""
    roots = [name for name in MODULES if name == start or name.startswith(start + ".")]
    seen: set[str] = set(roots)
    todo = list(roots)
    while todo:
        for target in LOADS[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


@pytest.mark.parametrize(
    ("layer", "must_not_load"),
    [
        ("requests_refresh.coordinator", "requests_refresh.oauth2"),
        ("requests_refresh.stores", "requests_refresh.oauth2"),
        ("requests_refresh.stores", "requests_refresh.adapter"),
        ("requests_refresh.oauth2", "requests_refresh.coordinator"),
        ("requests_refresh.oauth2", "requests_refresh.adapter"),
    ],
)
def test_a_layer_does_not_load_what_it_must_not_know(layer: str, must_not_load: str) -> None:
    """The coordinator knows nothing of OAuth, the grants nothing of it, the stores no HTTP."""
    loaded = _loaded_by(layer)
    assert (
        sorted(m for m in loaded if m == must_not_load or m.startswith(must_not_load + ".")) == []
    )


@pytest.mark.parametrize(
    "module", ["requests_refresh.coordinator", "requests_refresh.stores.base"]
)
def test_the_coordinator_and_the_store_interface_send_no_http(module: str) -> None:
    """Neither imports requests or urllib3: HTTP lives in the adapter and the grants."""
    used = {target.split(".")[0] for target in _imports(module, in_functions=True)}
    assert used & {"requests", "urllib3"} == set()
