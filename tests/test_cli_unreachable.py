"""Servers that do not answer give an error that says what to do, never a traceback.

Port 1 on the loopback refuses every connection, so these need no server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures_ledger import run_cli, unconfigured_cli_env

NOWHERE_KAFKA = "127.0.0.1:1"
NOWHERE_DATABASE = "postgresql://ledger@127.0.0.1:1/claw_ledger"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: its own state dir with an operator key, servers nowhere."""
    unset = unconfigured_cli_env(tmp_path)
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update({k: v for k, v in unset.items() if v is not None})
    environment["CLAW_LEDGER_KAFKA"] = NOWHERE_KAFKA
    environment["CLAW_LEDGER_DATABASE_URL"] = NOWHERE_DATABASE
    assert run_cli(environment, "keys", "new", "operator").returncode == 0
    return environment


@pytest.mark.parametrize(
    "command",
    [
        ("halt", "job:nowhere", "--reason", "drill", "--key", "operator"),
        (
            "publish",
            "--type",
            "agent.halted",
            "--stream",
            "halt:job:nowhere",
            "--body",
            "BODY",
            "--key",
            "operator",
        ),
    ],
    ids=["halt", "publish"],
)
def test_a_write_to_a_kafka_that_does_not_answer_says_so(
    env: dict[str, str], command: tuple[str, ...], tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"target": "job:nowhere", "reason": "drill"}')
    result = run_cli(env, *(str(body) if word == "BODY" else word for word in command), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: cannot reach Kafka at {NOWHERE_KAFKA}" in result.stderr
    assert "hint: is it running? `claw-ledger services status`" in result.stderr


def test_status_without_postgres_does_not_claim_counts(env: dict[str, str]) -> None:
    result = run_cli(env, "status", "--timeout", "2", timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "ready: NO" in result.stdout
    assert "events committed, quarantined: unknown (Postgres did not answer)" in result.stdout
    assert "events committed: 0" not in result.stdout
    assert "run `claw-ledger migrate`" not in result.stdout  # nobody knows yet

    document = json.loads(run_cli(env, "status", "--json", "--timeout", "2").stdout)
    assert document["ready"] is False
    assert document["checks"]["postgres"]["ok"] is False
    assert document["checks"]["schema"]["detail"] == "unknown (Postgres did not answer)"
