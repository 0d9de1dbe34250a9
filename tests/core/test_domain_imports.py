"""Pins the rule "the domain imports no Kafka, Postgres or HTTP client" (ledger/__init__.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = ("aiokafka", "asyncpg", "faust", "httpx", "requests", "kafka", "psycopg", "aiohttp")

_PROBE = """
import importlib, json, pkgutil, sys
import ledger
imported = ["ledger"]
for info in pkgutil.walk_packages(ledger.__path__, "ledger."):
    importlib.import_module(info.name)
    imported.append(info.name)
forbidden = %r
loaded = sorted(
    name for name in sys.modules
    if any(name == f or name.startswith(f + ".") for f in forbidden)
)
print(json.dumps({"imported": imported, "loaded": loaded}))
"""


def _probe(forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE % (forbidden,)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_domain_imports_no_kafka_postgres_or_http_client() -> None:
    report = _probe(FORBIDDEN)
    assert report["loaded"] == []
    # the probe really walked the package, subpackages included
    expected = {path.stem for path in (ROOT / "ledger").glob("*.py") if path.stem != "__init__"}
    walked = {name.split(".")[1] for name in report["imported"] if name.count(".") >= 1}
    assert expected <= walked
    assert any(name.startswith("ledger.openclaw.") for name in report["imported"])


def test_probe_detects_a_forbidden_import() -> None:
    # the same probe flags a module the domain does import (guards against a blind probe)
    assert _probe(("pydantic",))["loaded"]
