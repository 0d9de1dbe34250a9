"""Pins the rule "the domain imports no Kafka, Postgres or HTTP client" (ledger/__init__.py).

The same holds for ``openclaw_policy``, which also stays apart from the application
and the edges; and the ledger never imports ``openclaw_policy`` (imports point one way).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = ("aiokafka", "asyncpg", "faust", "httpx", "requests", "kafka", "psycopg", "aiohttp")
APPLICATION = ("claw_ledger", "consumers", "producers")

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
    result = subprocess.run(
        [sys.executable, "-c", _PROBE % (package, forbidden)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


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
    report = _probe("openclaw_policy", (*FORBIDDEN, *APPLICATION))
    assert report["loaded"] == []
    assert _modules("openclaw_policy") <= set(report["imported"])


def test_probe_detects_a_forbidden_import() -> None:
    # the same probe flags a module the domain does import (guards against a blind probe)
    assert _probe("ledger", ("pydantic",))["loaded"]
    assert _probe("openclaw_policy", ("json5",))["loaded"]
