"""Pins the import rules of the edges: faust only for ``--engine faust``, and
neither the processor's modules nor storage import the application."""

from __future__ import annotations

from tests.core._helpers import fresh_python_json

_PROBE = """
import importlib, json, sys
for name in %r:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(*modules: str) -> set[str]:
    return set(fresh_python_json(_PROBE % (modules,)))


def _under(loaded: set[str], package: str) -> list[str]:
    return sorted(m for m in loaded if m == package or m.startswith(package + "."))


def test_the_cli_and_the_default_engine_never_load_faust() -> None:
    loaded = _loaded(
        "claw_ledger.cli",
        "claw_ledger.cli.processor",
        "consumers.runner",
        "consumers.kafka_engine",
        "consumers.processor",
    )
    assert "consumers.kafka_engine" in loaded  # the probe did import them
    assert _under(loaded, "faust") == []
    assert "consumers.faust_engine" not in loaded


def test_the_faust_engine_is_what_loads_faust() -> None:
    # guards against a blind probe: the same check sees faust when it is there
    assert _under(_loaded("consumers.faust_engine"), "faust")


def test_the_processor_runner_and_storage_do_not_import_the_application() -> None:
    loaded = _loaded(
        "consumers.runner",
        "consumers.kafka_engine",
        "consumers.processor",
        "storage",
        "storage.postgres",
        "storage.memory",
        "storage.migrate",
        "storage.ledger_queries",
        "storage.projection_queries",
    )
    assert "storage.migrate" in loaded
    assert _under(loaded, "claw_ledger") == []
