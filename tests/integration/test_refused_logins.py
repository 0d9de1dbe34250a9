"""A database that answers but refuses the URL's login gets a one-line error that
names the URL (its password hidden) and where the right credentials are kept.

Real Postgres with the ledger's roles (ADR 0013). The pitfall this guards: a second
state dir's ``migrate`` resets the roles' passwords, and the first state dir's
URLs then fail to log in. Each command is run as a user runs it, in a child process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from claw_ledger.config import load_settings
from claw_ledger.db_roles import migrate_with_roles, role_urls
from storage.roles import role_names
from tests.fixtures_api import drop_roles
from tests.fixtures_ledger import connection, run_cli, unconfigured_cli_env

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "not-the-password-7Q"
#: how a log record of a long-running command starts (claw_ledger.logs)
TIMED = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (CRITICAL|ERROR|WARNING|INFO) "

#: commands that log in as the writer, the reader or the owner, one of each kind
REFUSED = [
    ("init",),
    ("processor", "run"),
    ("halts",),
    ("timeline",),
    ("keys", "list"),
    ("quarantine",),
    ("audit",),
]


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _env(state_dir: Path, **variables: str) -> dict[str, str]:
    unset = unconfigured_cli_env(state_dir)
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update({k: v for k, v in unset.items() if v is not None})
    environment.update(variables)
    return environment


async def test_a_refused_login_names_the_url_and_the_fix_and_writes_nothing(
    fresh_database: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = load_settings(database_url=fresh_database, state_dir=tmp_path, env={}, cwd=tmp_path)
    await migrate_with_roles(settings)
    writer_url, reader_url = role_urls(tmp_path, fresh_database)
    owner = urlsplit(fresh_database)
    env = _env(
        tmp_path,
        CLAW_LEDGER_KAFKA=kafka_bootstrap,
        # the owner's URL with a password it does not have (local Postgres trusts no
        # password for the superuser, so the owner's commands are not refused here)
        CLAW_LEDGER_DATABASE_URL=fresh_database,
        CLAW_LEDGER_WRITER_URL=_with_password(writer_url, WRONG_PASSWORD),
        CLAW_LEDGER_READER_URL=_with_password(reader_url, WRONG_PASSWORD),
    )
    try:
        for command in REFUSED:
            result = await asyncio.to_thread(run_cli, env, *command, timeout=120)
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, command
            assert "refused the login: password authentication failed" in result.stderr, command
            assert ":***@" in result.stderr and WRONG_PASSWORD not in result.stderr, command
            assert "hint: check the user and password in the URL" in result.stderr, command
            assert "db-roles.json" in result.stderr, command

        # the supervisor does not restart what a restart cannot mend
        supervised = await asyncio.to_thread(run_cli, env, "processor", "supervise", timeout=120)
        assert supervised.returncode == 2, supervised.stderr
        assert "refused the login" in supervised.stderr
        assert "a configuration error: not restarting it" in supervised.stderr
        assert "restarting in" not in supervised.stderr
        # each line a timed record, the processor's (a child) as the supervisor's
        assert all(re.match(TIMED, line) for line in supervised.stderr.splitlines()), supervised
        as_json = env | {"CLAW_LEDGER_LOG_FORMAT": "json"}
        supervised = await asyncio.to_thread(run_cli, as_json, "processor", "supervise")
        records = [json.loads(line) for line in supervised.stderr.splitlines()]
        assert {(r["logger"], r["level"]) for r in records} == {
            ("claw_ledger", "critical"),  # the processor's last word, the command's error
            ("claw_ledger.processor.supervisor", "error"),
        }, records
        assert any("refused the login" in r["message"] for r in records)

        status = await asyncio.to_thread(run_cli, env, "status", "--timeout", "5")
        assert status.returncode == 1
        assert "consumer lag: unknown (Postgres did not answer)" in status.stdout
        assert "Kafka and Postgres" not in status.stdout  # Kafka did answer
        # the refusal by its message, and what to do on a line of its own
        (postgres,) = [x for x in status.stdout.splitlines() if x.startswith("  postgres ")]
        assert "refused the login" in postgres and "ServiceError" not in postgres
        assert "hint: check the user and password in the URL" in status.stdout

        async with connection(fresh_database) as conn:  # init recorded no trust root
            assert (
                await conn.fetchval("SELECT value FROM ledger_meta WHERE key = 'trust_root'")
                is None
            )
            assert await conn.fetchval("SELECT count(*) FROM events") == 0
    finally:
        await drop_roles(fresh_database, list(role_names(owner.path[1:])))


async def test_a_database_that_does_not_exist_is_named_as_such(
    fresh_database: str, tmp_path: Path
) -> None:
    missing = urlunsplit(urlsplit(fresh_database)._replace(path="/claw_no_such_database"))
    env = _env(tmp_path, CLAW_LEDGER_DATABASE_URL=missing)
    for command in (("timeline",), ("halts",), ("init",)):
        result = await asyncio.to_thread(run_cli, env, *command, timeout=120)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, command
        assert "has no such database" in result.stderr, command
        assert "claw_no_such_database" in result.stderr, command
