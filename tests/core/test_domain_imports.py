"""Pins the direction of imports: domain <- edges <- application.

* The domain (``ledger``) imports no Kafka, Postgres or HTTP client, not even
  through a third-party package: a probe imports every module of it and looks
  at ``sys.modules``.
* By the import statements of every file: domain packages import no edge, no
  application code and no I/O client; edge packages (``producers``,
  ``consumers``, ``storage``) never import the application (``claw_ledger``);
  the CLI's command modules never import each other, only the shared helpers.
* ``openclaw_policy`` obeys the same rules as the domain, and the ledger never
  imports it (imports point one way).
"""

from __future__ import annotations

import ast
from pathlib import Path

from ._helpers import fresh_python_json

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = ("aiokafka", "asyncpg", "faust", "httpx", "requests", "kafka", "psycopg", "aiohttp")
#: the policy checker is a domain package: no application and no edge loads with it
APPLICATION_AND_EDGES: tuple[str, ...] = ("claw_ledger", "consumers", "producers", "storage")

_PROBE = """
import importlib, json, pkgutil, sys
package = importlib.import_module(%r)
imported = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
    imported.append(info.name)
forbidden = %r
loaded = sorted(
    name for name in sys.modules
    if any(name == f or name.startswith(f + ".") for f in forbidden)
)
print(json.dumps({"imported": imported, "loaded": loaded}))
"""


def _probe(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    probed: dict[str, list[str]] = fresh_python_json(_PROBE % (package, forbidden))
    return probed


def _modules(package: str) -> set[str]:
    return {
        path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        for path in (ROOT / package).rglob("*.py")
        if path.stem != "__init__"
    }


def test_domain_imports_no_kafka_postgres_or_http_client() -> None:
    report = _probe("ledger", (*FORBIDDEN, "openclaw_policy"))
    assert report["loaded"] == []
    # the probe really walked the package, subpackages included
    assert _modules("ledger") <= set(report["imported"])


def test_policy_checker_imports_no_client_and_no_application() -> None:
    report = _probe("openclaw_policy", (*FORBIDDEN, *APPLICATION_AND_EDGES))
    assert report["loaded"] == []
    assert _modules("openclaw_policy") <= set(report["imported"])


def test_probe_detects_a_forbidden_import() -> None:
    # the same probe flags a module the domain does import (guards against a blind probe)
    assert _probe("ledger", ("pydantic",))["loaded"]
    assert _probe("openclaw_policy", ("json5",))["loaded"]


# ---------------------------------------------------------------- import direction, by AST
#
# Every import statement counts: at module level, inside functions and under
# ``if TYPE_CHECKING:``. Packages that another change adds (a top-level
# ``storage`` edge, an ``openclaw_policy`` domain package) are checked as soon
# as they exist.

_DOMAIN_CANDIDATES = ("ledger", "openclaw_policy")
_EDGE_CANDIDATES = ("producers", "consumers", "storage")
APPLICATION = ("claw_ledger",)
NOT_PACKAGES = ("bench", "tests")  # scripts and tests may import anything; nothing imports them
#: third-party clients that do I/O; the domain imports none of them
IO_CLIENTS = (
    *FORBIDDEN,
    "psycopg2",
    "confluent_kafka",
    "mode",
    "urllib3",
    "websockets",
    "grpc",
    "redis",
    "boto3",
)
#: CLI modules that command modules may import: the shared helpers
CLI_SHARED = ("common",)
#: edge -> application imports that another change removes: (file, module imported).
#: The test fails on a listed import that is gone, so the list only shrinks.
KNOWN_EDGE_TO_APP: set[tuple[str, str]] = set()

_SKIP_DIRS = {".venv", "build", "dist", "node_modules", "__pycache__"}


def _present(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if (ROOT / n / "__init__.py").is_file())


DOMAIN = _present(_DOMAIN_CANDIDATES)
EDGES = _present(_EDGE_CANDIDATES)


def _python_files(package: str) -> list[Path]:
    return sorted(
        path
        for path in (ROOT / package).rglob("*.py")
        if not (_SKIP_DIRS & set(path.relative_to(ROOT).parts))
    )


def _module_of(path: Path) -> tuple[str, bool]:
    """Dotted module name of a file under ROOT, and whether it is a package's __init__."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(
    source: str, module: str, *, is_package: bool = False
) -> list[tuple[int, str]]:
    """(line, module) for every import in ``source``, relative ones resolved.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a
    module of this repository, else as importing ``pkg``.
    """
    found: list[tuple[int, str]] = []
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                kept = package_parts[: len(package_parts) - node.level + 1]
                base = ".".join([*kept, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.append((node.lineno, candidate if _is_module(candidate) else base))
    return found


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _violations(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for package in packages:
        for path in _python_files(package):
            module, is_package = _module_of(path)
            for _line, name in imported_modules(
                path.read_text(encoding="utf-8"), module, is_package=is_package
            ):
                if _within(name, forbidden):
                    found.add((path.relative_to(ROOT).as_posix(), name))
    return found


def test_domain_imports_no_edge_application_or_io_client() -> None:
    assert "ledger" in DOMAIN
    forbidden = (*_EDGE_CANDIDATES, *APPLICATION, *NOT_PACKAGES, *IO_CLIENTS)
    assert _violations(DOMAIN, forbidden) == set()


def test_edges_never_import_the_application() -> None:
    assert {"producers", "consumers"} <= set(EDGES)
    found = _violations(EDGES, (*APPLICATION, *NOT_PACKAGES))
    assert found - KNOWN_EDGE_TO_APP == set()
    assert KNOWN_EDGE_TO_APP - found == set(), "an allowed import is gone: drop it from the list"


def test_cli_command_modules_share_code_only_through_the_helpers() -> None:
    cli_dir = ROOT / "claw_ledger" / "cli"
    commands = sorted(
        p for p in cli_dir.glob("*.py") if p.stem != "__init__" and p.stem not in CLI_SHARED
    )
    assert len(commands) >= 10
    allowed = tuple(f"claw_ledger.cli.{name}" for name in CLI_SHARED)
    found = set()
    for path in commands:
        module, _ = _module_of(path)
        for line, name in imported_modules(path.read_text(encoding="utf-8"), module):
            if _within(name, ("claw_ledger.cli",)) and not _within(name, allowed):
                found.add(f"{path.name}:{line} imports {name}")
    assert found == set()


def test_the_import_reader_sees_every_kind_of_import() -> None:
    source = """
from __future__ import annotations
from typing import TYPE_CHECKING
import aiokafka.admin
from . import common
from .wpc import read_input
from .. import config
from claw_ledger.cli import keys, cli
if TYPE_CHECKING:
    from claw_ledger.config import Settings
def later() -> None:
    import faust
"""
    names = {name for _, name in imported_modules(source, "claw_ledger.cli.cst")}
    assert {
        "aiokafka.admin",
        "claw_ledger.cli.common",
        "claw_ledger.cli.wpc",
        "claw_ledger.config",
        "claw_ledger.cli.keys",
        "claw_ledger.cli",  # ``cli`` is the root group, an attribute of the package
        "faust",
    } <= names
    # in a package's __init__, "." is the package itself
    assert imported_modules("from .errors import X", "ledger", is_package=True) == [
        (1, "ledger.errors")
    ]
