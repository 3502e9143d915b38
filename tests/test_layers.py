"""Dependencies point one way: every import inside the package (module-level or in a function) goes down the layers.

errors / package root -> utils -> data -> models -> eval -> attacks -> defenses -> train -> export -> explain
-> predict -> batch / video_attack -> demo -> cli / serve. The package root imports nothing eagerly. A
function-level import counts like any other: it hides a cycle from Python, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fakescope

PACKAGE = Path(fakescope.__file__).parent
LAYERS = [
    {"__init__", "errors"},
    {"utils"},
    {"data"},
    {"models"},
    {"eval"},
    {"attacks"},
    {"defenses"},
    {"train"},
    {"export"},
    {"explain"},
    {"predict"},
    {"batch", "video_attack"},
    {"demo"},
    {"cli", "serve", "__main__"},
]


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _level(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"fakescope.{unit} is in no layer of tests/test_layers.py: place it")


def _imports(path: Path) -> list[tuple[str, int]]:
    """``(imported fakescope module, line)`` for every import statement of a file (module level or not)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("fakescope"):
            if node.module == "fakescope":  # from fakescope import x: x may be a subpackage
                out += [(f"fakescope.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("fakescope.")]
    return out


def _root_names() -> set[str]:
    """Names defined in fakescope/__init__.py itself (``__version__``, ``DEFAULT_DETECTOR``...)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_no_import_goes_up_a_layer() -> None:
    root_names = _root_names()
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        unit = _unit(".".join(rel.parts))
        for module, line in _imports(path):
            target = _unit(module)
            if target in root_names:
                target = "__init__"
            if _level(target) > _level(unit):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} ({unit}) imports {module}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_package_root_imports_nothing_eagerly() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    eager = [n for n in tree.body if isinstance(n, ast.ImportFrom | ast.Import) and "fakescope" in ast.dump(n)]
    assert not eager
