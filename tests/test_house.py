"""House rules checked on the source tree: no private name crosses a module boundary.

A name starting with one underscore belongs to the module (or class) that defines it.  These
tests parse every Python file of the package, the tests, the benchmarks and the examples and
fail on (a) ``from <udesci module> import _name`` and (b) ``obj._name`` where ``_name`` is a
private attribute or function defined somewhere in ``udesci`` and ``obj`` is not ``self`` or
``cls`` inside the class that owns it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "udesci"
TREES = [PACKAGE, ROOT / "tests", ROOT / "bench", ROOT / "examples"]


def _private(name: str) -> bool:
    # IPython's display protocol (_repr_html_, _repr_latex_, ...) is public by convention
    protocol = name.startswith("_repr_") and name.endswith("_")
    return name.startswith("_") and not name.startswith("__") and not protocol


def _files():
    for tree in TREES:
        yield from sorted(p for p in tree.rglob("*.py") if ".venv" not in p.parts)


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, path: Path) -> str:
    """Absolute module name an ``ImportFrom`` refers to."""
    if not node.level:
        return node.module or ""
    base = _module_of(path).split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _udesci_private_attributes() -> set[str]:
    """Private names udesci defines as functions, classes, or attributes set on ``self``."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
                if isinstance(node.value, ast.Name) and node.value.id == "self":
                    names.add(node.attr)
    return names


def test_no_private_name_is_imported_across_modules():
    offences = []
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(node, path)
                if target.split(".")[0] != "udesci" or target == _module_of(path):
                    continue
                for alias in node.names:
                    if _private(alias.name):
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name} from {target}")
    assert not offences, "private names imported across modules:\n" + "\n".join(offences)


def test_no_private_attribute_of_udesci_is_reached_from_outside():
    private = _udesci_private_attributes()
    assert "_input_fn" in private and "_fused_values" in private  # the scan sees what it should
    offences = []
    for path in _files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr in private):
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue  # an override calling its base (e.g. a SymPy printer's _print_Float)
            offences.append(f"{path.relative_to(ROOT)}:{node.lineno} reaches .{node.attr}")
    assert not offences, "private attributes reached from outside their owner:\n" + "\n".join(offences)


def test_the_checks_catch_an_offence(tmp_path):
    """The scanners flag a private import and a private attribute access (so they can fail)."""
    src = "from udesci.model import _as_symbol\nfield._input_fn = None\n"
    tree = ast.parse(src)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and any(_private(a.name) for a in n.names)]
    attrs = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in _udesci_private_attributes()]
    assert len(imports) == 1 and len(attrs) == 1
