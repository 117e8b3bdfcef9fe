"""The direction of imports between headend's packages, written down once: a package imports
only packages below it, never one of its own floor or above — type-only (``TYPE_CHECKING``)
and lazy imports (inside a function) included, so no circle can form however it is hidden.

From the top: the command, the app that composes everything, the faces (console, widget),
HTTP (server), one request's run (runs), the wire shapes and framings (surfaces), who calls
(access), what answers (agents), then what agents use and what everything shares.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "headend"

FLOORS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"app"},
    {"console", "widget"},
    {"server"},
    {"runs"},
    {"surfaces"},
    {"access"},
    {"agents", "webhooks"},
    {"providers", "tools"},
    {"knowledge"},
    {"observability", "limits"},
    {"config", "schemas", "store"},
    {"pricing", "proxies", "guardrails"},
    {"errors", "types", "urls", ""},  # "": the package's own __init__ (its version)
]
FLOOR = {package: len(FLOORS) - i for i, floor in enumerate(FLOORS) for package in floor}


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every headend module ``path`` imports, with the line: at run time, for types, lazily."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] == "headend"]
    return found


def test_every_package_has_a_floor() -> None:
    packages = {package_of(module_of(path)) for path in SRC.rglob("*.py")}
    assert packages - set(FLOOR) == set(), "a new package: give it a floor in FLOORS"


def test_packages_import_only_those_below_them() -> None:
    against = []
    for path in sorted(SRC.rglob("*.py")):
        module = module_of(path)
        mine = package_of(module)
        for line, imported in imports(path):
            theirs = package_of(imported)
            if theirs != mine and FLOOR[theirs] >= FLOOR[mine]:
                against.append(f"{path.relative_to(SRC.parent)}:{line} {module} -> {imported}")
    assert against == [], "imports against the direction:\n" + "\n".join(against)


def test_hidden_imports_are_seen(tmp_path: Path) -> None:
    module = tmp_path / "hidden.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from headend.server.context import RequestContext\n"
        "def later() -> None:\n"
        "    import headend.app\n"
    )
    assert [name for _, name in imports(module)] == ["headend.server.context", "headend.app"]


# Names every package may have, each meaning its own package's thing: its protocol (``base``),
# the table it is extended through (``registry``), a face's URL table (``routes``).
PER_PACKAGE = {"__init__", "base", "registry", "routes"}


def test_one_module_name_means_one_thing() -> None:
    """An API's modules carry their layer in the name (``schemas/…/chat_api``,
    ``surfaces/responses_translate``, ``server/routes/chat``), so a name found in a traceback
    or a search is one module, not three."""
    seen: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        seen.setdefault(path.stem, []).append(str(path.relative_to(SRC)))
    shared = {stem: paths for stem, paths in seen.items() if len(paths) > 1}
    assert {stem: shared[stem] for stem in set(shared) - PER_PACKAGE} == {}
