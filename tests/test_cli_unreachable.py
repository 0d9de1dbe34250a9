"""Servers that do not answer give an error that says what to do, never a traceback.

Port 1 on the loopback refuses every connection, so these need no server.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures_ledger import CLAW_LEDGER, NOWHERE_DATABASE, NOWHERE_KAFKA, run_cli


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
    offline_cli_env: dict[str, str], command: tuple[str, ...], tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_text('{"target": "job:nowhere", "reason": "drill"}')
    result = run_cli(
        offline_cli_env, *(str(body) if word == "BODY" else word for word in command), timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"error: cannot reach Kafka at {NOWHERE_KAFKA}" in result.stderr
    assert "hint: is it running? `claw-ledger services status`" in result.stderr


def test_status_without_postgres_does_not_claim_counts(offline_cli_env: dict[str, str]) -> None:
    result = run_cli(offline_cli_env, "status", "--timeout", "2", timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "ready: NO" in result.stdout
    assert "events committed, quarantined: unknown (Postgres did not answer)" in result.stdout
    assert "events committed: 0" not in result.stdout
    assert "consumer lag: unknown (Kafka and Postgres did not answer)" in result.stdout
    assert "run `claw-ledger migrate`" not in result.stdout  # nobody knows yet

    document = json.loads(run_cli(offline_cli_env, "status", "--json", "--timeout", "2").stdout)
    assert document["ready"] is False
    assert document["checks"]["postgres"]["ok"] is False
    assert document["checks"]["schema"]["detail"] == "unknown (Postgres did not answer)"


def test_serve_with_its_authorizer_and_no_kafka_exits_69_with_what_to_do(
    offline_cli_env: dict[str, str],
) -> None:
    assert run_cli(offline_cli_env, "keys", "new", "authorizer").returncode == 0
    result = run_cli(offline_cli_env, "serve", "--port", "0", "--kafka-attempts", "2", timeout=60)
    assert result.returncode == 69, result.stderr
    assert "Traceback" not in result.stderr
    assert f"Kafka at {NOWHERE_KAFKA} does not answer (attempt 1)" in result.stderr
    assert f"Kafka at {NOWHERE_KAFKA} did not answer in 2 attempts" in result.stderr
    assert "serve the queries alone with --no-authorize" in result.stderr
    assert "Uvicorn running" not in result.stderr  # refused before listening


def test_serve_waits_for_kafka_as_long_as_a_processor_does() -> None:
    from claw_ledger.cli import serve
    from consumers import kafka_engine

    assert serve.KAFKA_START_ATTEMPTS == kafka_engine.KAFKA_START_ATTEMPTS


def test_serve_without_its_authorizer_needs_no_kafka(offline_cli_env: dict[str, str]) -> None:
    assert run_cli(offline_cli_env, "keys", "new", "authorizer").returncode == 0
    with subprocess.Popen(
        [*CLAW_LEDGER, "serve", "--port", "0", "--no-authorize"],
        env=offline_cli_env,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stderr is not None
            lines: list[str] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and server.poll() is None:
                lines.append(server.stderr.readline())
                if "Application startup complete" in lines[-1]:
                    break
            assert "Application startup complete" in lines[-1], "".join(lines)
            assert not any("Kafka" in line for line in lines)  # never asked for it
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_status_with_the_local_servers_gone_is_not_ready(tmp_path: Path) -> None:
    """Servers of `services up` killed (their pids dead): a failed check and exit 1,
    the same as servers that do not answer, not a usage error."""
    import os

    from tests.fixtures_ledger import unconfigured_cli_env

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that ran and is gone
    record = {
        "postgres": {"managed": True, "url": NOWHERE_DATABASE, "pid": dead.pid},
        "kafka": {"managed": True, "bootstrap": NOWHERE_KAFKA, "pid": dead.pid},
    }
    (tmp_path / "services.json").write_text(json.dumps(record))
    unset = unconfigured_cli_env(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update({k: v for k, v in unset.items() if v is not None})
    result = run_cli(env, "status", "--timeout", "2", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "ready: NO" in result.stdout
    assert "no PostgreSQL" in result.stdout and "claw-ledger services up" in result.stdout
    # each says which recorded server is gone; Kafka said "no Kafka bootstrap configured"
    services = tmp_path / "services.json"
    for what, address in (("PostgreSQL", NOWHERE_DATABASE), ("Kafka", NOWHERE_KAFKA)):
        assert (
            f"no {what} (" in result.stdout
            and f"recorded in {services} ({address}) is not running" in result.stdout
        ), result.stdout
