"""The ledger's own credentials cannot rewrite it (ADR 0013, migration 0006).

Real Postgres. ``claw-ledger migrate`` creates a writer (the processor) and a
reader (queries) per database; neither may change or remove a committed row,
switch the append-only triggers off, or change the schema, and the reader may
not write at all. The writer can still do everything the processor does.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
import pytest_asyncio
from click.testing import CliRunner, Result

from claw_ledger.cli import cli
from claw_ledger.config import effective_database_url, load_settings
from claw_ledger.db_roles import (
    migrate_with_roles,
    role_credentials,
    role_urls,
    stored_credentials,
)
from consumers.processor import IngressRecord, VerifyingProcessor
from ledger.crypto import KeyPair
from ledger.errors import MigrationError
from ledger.events import build_event, sign_event
from storage import postgres as store
from storage.migrate import migrate
from storage.roles import RoleCredentials, RolesNotCreated, ensure_roles, role_names, role_url
from storage.tlog_store import StoredCheckpoint, leaf_at
from storage.tlog_writer import (
    append_committed_round,
    load_log_state,
    try_lock,
    waiting_partitions,
)
from tests.fixtures_api import drop_roles
from tests.integration._tlog_rounds import signed_checkpoint

pytestmark = pytest.mark.integration

ADMIN = KeyPair.generate("admin")
OPERATOR = KeyPair.generate("operator")
GROUP, TOPIC = "verifier", "ingress"

#: statements that would rewrite history or the schema; each must be refused
#: by a privilege check ("permission denied" / "must be owner"), never reach a trigger
FORBIDDEN = [
    "UPDATE events SET stream = 'forged'",
    "DELETE FROM events",
    "TRUNCATE events",
    "UPDATE quarantine SET reason_code = 'OK'",
    "DELETE FROM quarantine",
    "TRUNCATE quarantine",
    "ALTER TABLE events DISABLE TRIGGER events_append_only",
    "ALTER TABLE events DISABLE TRIGGER ALL",
    "ALTER TABLE quarantine DISABLE TRIGGER quarantine_append_only",
    "SET session_replication_role = replica",
    "DROP TABLE events",
    "DROP TABLE quarantine CASCADE",
    "CREATE TABLE shadow_events (x int)",
    "CREATE TABLE public.shadow_events (x int)",
    "DROP FUNCTION claw_refuse_change() CASCADE",
    "UPDATE ledger_meta SET value = 'did:key:forged'",
    "DELETE FROM ledger_meta",
    "SELECT claw_ledger_grant_roles(current_user, current_user)",
    # archiving is the owner's (migration 0017)
    "ALTER TABLE events DETACH PARTITION events_000000000001",
    "SELECT claw_set_event_partition_rows(1)",
    "INSERT INTO event_keys SELECT * FROM event_keys",
    "INSERT INTO archive_boundaries (before_position, partition_name, events, state_snapshot)"
    " VALUES (1, 'events_000000000001', 0, '{}')",
    "UPDATE event_partitions SET detached_at = now()",
    "UPDATE tlog_nodes SET hash = hash",
    "DELETE FROM tlog_leaves",
    "TRUNCATE tlog_checkpoints",
    "UPDATE tlog_checkpoints SET note = ''",
]


@dataclass(frozen=True)
class Ledger:
    owner_url: str
    writer_url: str
    reader_url: str
    credentials: RoleCredentials


async def _invoke(args: list[str]) -> Result:
    """The CLI in a worker thread: its commands run their own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, cli, args)


def _raw(key: KeyPair, event_type: str, stream: str, body: Mapping[str, Any]) -> bytes:
    return sign_event(build_event(event_type, stream, body, key), key).to_bytes()


def _register(did: str, name: str, role: str) -> bytes:
    return _raw(ADMIN, "key.registered", f"key:{did}", {"did": did, "name": name, "roles": [role]})


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def _settings(owner_url: str, state_dir: Path) -> Any:
    return load_settings(database_url=owner_url, state_dir=state_dir, env={}, cwd=state_dir)


async def _roles_for(owner_url: str, state_dir: Path) -> Ledger:
    await migrate_with_roles(_settings(owner_url, state_dir))
    writer_url, reader_url = role_urls(state_dir, owner_url)
    credentials = role_credentials(state_dir, urlsplit(owner_url).path.lstrip("/"))
    return Ledger(owner_url, writer_url, reader_url, credentials)


async def _process_as_writer(writer_url: str) -> None:
    """What the processor and ``init`` do, on the writer's connections only."""
    conn = await asyncpg.connect(writer_url)
    try:
        await store.set_trust_root(conn, ADMIN.did)
    finally:
        await conn.close()
    ledger = await store.PostgresLedgerStore.open(writer_url)
    try:
        processor = VerifyingProcessor(ledger, group=GROUP, topic=TOPIC, trust_root=None)
        await processor.start()
        offsets = itertools.count()
        values = [
            _register(ADMIN.did, "admin", "admin"),
            _register(OPERATOR.did, "operator", "operator"),
            _raw(OPERATOR, "agent.halted", "halt:job:1", {"target": "job:1", "reason": "drill"}),
            b"not an envelope",
        ]
        report = await processor.process([IngressRecord(0, next(offsets), v) for v in values])
        assert len(report.accepted) == 3, report
        assert [q.code for q in report.quarantined] == ["MALFORMED_JSON"], report
        mark, outcomes = await ledger.unforwarded_outcomes(GROUP, TOPIC, 0)
        assert len(outcomes) == 4
        await ledger.record_forwarded(GROUP, TOPIC, {0: mark})
        assert (await ledger.unforwarded_outcomes(GROUP, TOPIC, 0))[1] == []
    finally:
        await ledger.close()
    await _checkpoint_as_writer(writer_url)


async def _checkpoint_as_writer(writer_url: str) -> None:
    """What the checkpointer does, as the writer: lock, find the new events, append a round."""
    conn = await asyncpg.connect(writer_url)
    try:
        assert await try_lock(conn)
        state = await load_log_state(conn)
        waiting = await waiting_partitions(conn, [TOPIC], state.included)
        assert [(w.done, w.head) for w in waiting] == [(0, 3)]
        edge = state.edge

        def seal(hashes: list[bytes]) -> tuple[list[tuple[int, int, bytes]], StoredCheckpoint]:
            return edge.extend(hashes), signed_checkpoint(edge, "lp.example/log", OPERATOR)

        appended = await append_committed_round(conn, waiting, edge.size, 100, seal)
        assert appended is not None and appended.leaves == 3
        assert appended.included == {0: 3}
        # the hash Postgres computed is the leaf's
        stored = await conn.fetch("SELECT leaf_hash FROM tlog_leaves ORDER BY log_index")
        leaves = [await leaf_at(conn, index) for index in range(3)]
        assert [bytes(r["leaf_hash"]) for r in stored] == [
            leaf.hash() for leaf in leaves if leaf is not None
        ]
        assert (await load_log_state(conn)).edge.root() == edge.root()
    finally:
        await conn.close()


async def _assert_locked_down(ledger: Ledger) -> None:
    for url, role in ((ledger.writer_url, "writer"), (ledger.reader_url, "reader")):
        conn = await asyncpg.connect(url)
        try:
            for sql in FORBIDDEN:
                with pytest.raises(asyncpg.InsufficientPrivilegeError) as caught:
                    await conn.execute(sql)
                message = str(caught.value)
                # the triggers raise the same SQLSTATE: the refusal must come earlier
                assert "append-only" not in message, (role, sql, message)
                assert "permission denied" in message or "must be owner" in message, (
                    role,
                    sql,
                    message,
                )
        finally:
            await conn.close()
    owner = await asyncpg.connect(ledger.owner_url)
    try:
        assert await owner.fetchval("SELECT count(*) FROM events") == 3
        assert await owner.fetchval("SELECT count(*) FROM quarantine") == 1
        enabled = await owner.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid IN ('events'::regclass,"
            " 'quarantine'::regclass) AND NOT tgisinternal AND tgenabled = 'O'"
        )
        # events: append-only, no truncate, record keys (0017); quarantine: the first two
        assert len(enabled) == 5
    finally:
        await owner.close()


async def _assert_reader_cannot_write(ledger: Ledger) -> None:
    conn = await asyncpg.connect(ledger.reader_url)
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        assert {"events", "quarantine", "keys", "control_state", "ledger_meta"} <= set(tables)
        for table in tables:
            assert await conn.fetchval(f"SELECT count(*) >= 0 FROM {table}")
            for sql in (
                f"INSERT INTO {table} DEFAULT VALUES",
                f"UPDATE {table} SET {await _plain_column(conn, table)} = NULL",
                f"DELETE FROM {table}",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await conn.execute(sql)
    finally:
        await conn.close()


async def _plain_column(conn: asyncpg.Connection, table: str) -> str:
    return str(
        await conn.fetchval(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = $1 AND is_identity = 'NO' ORDER BY ordinal_position LIMIT 1",
            table,
        )
    )


@pytest_asyncio.fixture(loop_scope="session")
async def ledger(fresh_database: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    result = await _roles_for(fresh_database, tmp_path)
    yield result
    await drop_roles(fresh_database, list(role_names(urlsplit(fresh_database).path[1:])))


async def test_the_roles_are_plain_logins_that_own_nothing(ledger: Ledger) -> None:
    for url, name in (
        (ledger.writer_url, ledger.credentials.writer),
        (ledger.reader_url, ledger.credentials.reader),
    ):
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT current_user") == name
            row = await conn.fetchrow(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication"
                " FROM pg_roles WHERE rolname = current_user"
            )
            assert not any(row.values())
            owned = await conn.fetchval(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = current_user"
            )
            assert owned == 0
        finally:
            await conn.close()


async def test_the_writer_runs_the_processor_and_neither_role_can_rewrite(
    ledger: Ledger,
) -> None:
    await _process_as_writer(ledger.writer_url)
    await _assert_locked_down(ledger)
    await _assert_reader_cannot_write(ledger)


OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _documented_writer_rights() -> dict[str, frozenset[str]]:
    """Table (or function) -> privileges, from the writer's row of operations.md."""
    row = next(
        line for line in OPERATIONS.read_text().splitlines() if line.startswith("| writer |")
    )
    rights: dict[str, frozenset[str]] = {}
    for part in row.split(" | ")[-1].rstrip(" |").split("; "):
        privileges, _, objects = part.partition(" on ")
        for name in re.findall(r"`([a-z_]+)`", objects):
            rights[name] = frozenset(privileges.strip("`").split(", "))
    return rights


async def test_the_roles_have_the_rights_the_docs_list_and_no_owner_function(
    ledger: Ledger,
) -> None:
    """The reader ran claw_ensure_event_partitions, which runs as the owner: it
    created partitions, as many as it asked for. The writer's rights are those the
    operations guide lists, no more."""
    reader = await asyncpg.connect(ledger.reader_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await reader.execute("SELECT claw_ensure_event_partitions(10000000)")
    finally:
        await reader.close()
    owner = await asyncpg.connect(ledger.owner_url)
    try:
        granted = {
            r["table_name"]: frozenset(r["privileges"].split(", "))
            for r in await owner.fetch(
                "SELECT table_name, string_agg(privilege_type, ', ' ORDER BY privilege_type)"
                " AS privileges FROM information_schema.role_table_grants"
                " WHERE grantee = $1 AND table_name NOT LIKE 'events\\_0%' GROUP BY table_name",
                ledger.credentials.writer,
            )
        }
        for function in await owner.fetch(
            "SELECT proname, has_function_privilege($1, oid, 'EXECUTE') AS writer,"
            " has_function_privilege($2, oid, 'EXECUTE') AS reader"
            " FROM pg_proc WHERE prosecdef AND pronamespace = 'public'::regnamespace",
            ledger.credentials.writer,
            ledger.credentials.reader,
        ):
            assert not function["reader"], function["proname"]
            if function["writer"]:
                granted[function["proname"]] = frozenset({"EXECUTE"})
    finally:
        await owner.close()
    assert granted == _documented_writer_rights()


async def test_migrate_is_idempotent_with_the_roles_present(ledger: Ledger, tmp_path: Path) -> None:
    await _process_as_writer(ledger.writer_url)
    settings = _settings(ledger.owner_url, tmp_path)
    report, created, kept = await migrate_with_roles(settings)
    assert report.applied == () and created == [] and kept == []
    result = await _invoke(
        ["migrate", "--database-url", ledger.owner_url, "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output and "created role" not in result.output
    # the stored passwords still open the roles' connections, with the same rights
    for url in (ledger.writer_url, ledger.reader_url):
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM events") == 3
        finally:
            await conn.close()
    await _assert_locked_down(ledger)


async def test_a_second_state_dir_never_locks_out_the_first(
    ledger: Ledger, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two state dirs migrating one shared database used to take turns setting the
    roles' passwords, each refusing the other's processes; rotating is now asked for."""
    other = tmp_path_factory.mktemp("other-state-dir")
    database = urlsplit(ledger.owner_url).path[1:]
    args = ["migrate", "--database-url", ledger.owner_url, "--state-dir", str(other)]
    result = await _invoke(args)
    assert result.exit_code == 0, result.output
    assert "kept the passwords of the existing roles" in result.output
    assert "--rotate-role-passwords" in result.output
    assert stored_credentials(other, database) is None
    await _process_as_writer(ledger.writer_url)  # the first state dir's URLs still log in
    as_json = await _invoke([*args, "--json"])
    assert json.loads(as_json.stdout)["roles_kept"] == list(role_names(database))

    rotated = await _invoke([*args, "--rotate-role-passwords"])
    assert rotated.exit_code == 0, rotated.output
    new = stored_credentials(other, database)
    assert new is not None and new.writer_password != ledger.credentials.writer_password
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(ledger.writer_url)
    writer_url, reader_url = role_urls(other, ledger.owner_url)
    for url in (writer_url, reader_url):
        conn = await asyncpg.connect(url)
        await conn.close()
    # the first state dir (the fixture's), migrating again, does not take them back
    first = ["migrate", "--database-url", ledger.owner_url, "--state-dir", str(tmp_path)]
    again = await _invoke(first)
    assert again.exit_code == 0, again.output
    conn = await asyncpg.connect(writer_url)
    await conn.close()


async def test_printed_grants_applied_by_the_owner_give_the_same_lockdown(
    empty_database: str, tmp_path: Path
) -> None:
    await migrate(empty_database)
    result = await _invoke(
        [
            "migrate",
            "--print-grants",
            "--database-url",
            empty_database,
            "--state-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    sql = result.output
    credentials = role_credentials(tmp_path, urlsplit(empty_database).path[1:])
    assert credentials.writer_password in sql and "claw_ledger_grant_roles" in sql
    await _execute(empty_database, sql, sql)  # twice: idempotent
    try:
        ledger = Ledger(
            empty_database,
            role_url(empty_database, credentials.writer, credentials.writer_password),
            role_url(empty_database, credentials.reader, credentials.reader_password),
            credentials,
        )
        await _process_as_writer(ledger.writer_url)
        await _assert_locked_down(ledger)
        await _assert_reader_cannot_write(ledger)
    finally:
        await drop_roles(empty_database, [credentials.writer, credentials.reader])


async def test_an_owner_with_createrole_but_no_superuser_sets_everything_up(
    empty_database: str, tmp_path: Path
) -> None:
    """The usual managed-Postgres case: the ledger's owner is an ordinary role."""
    name = urlsplit(empty_database).path[1:]
    owner_name = f"{name}_owner"
    await _execute(
        empty_database,
        f"CREATE ROLE \"{owner_name}\" LOGIN CREATEROLE PASSWORD 'owner'",
        f'ALTER DATABASE "{name}" OWNER TO "{owner_name}"',
    )
    owner_url = role_url(empty_database, owner_name, "owner")
    try:
        ledger = await _roles_for(owner_url, tmp_path)
        await _process_as_writer(ledger.writer_url)
        await _assert_locked_down(ledger)
        await _assert_reader_cannot_write(ledger)
        _, created, _ = await migrate_with_roles(_settings(owner_url, tmp_path))
        assert created == []
    finally:
        await _execute(empty_database, f'REASSIGN OWNED BY "{owner_name}" TO current_user')
        await drop_roles(empty_database, [*role_names(name), owner_name])


async def test_an_owner_without_createrole_gets_the_sql_to_run(
    fresh_database: str, tmp_path: Path
) -> None:
    name = urlsplit(fresh_database).path[1:]
    plain = f"{name}_plain"
    await _execute(fresh_database, f"CREATE ROLE \"{plain}\" LOGIN PASSWORD 'plain'")
    try:
        credentials = role_credentials(tmp_path, name)
        with pytest.raises(RolesNotCreated) as caught:
            await ensure_roles(role_url(fresh_database, plain, "plain"), credentials)
        assert "may not create" in caught.value.message
        assert caught.value.sql.count("CREATE ROLE") == 2
        conn = await asyncpg.connect(fresh_database)
        try:
            assert not await conn.fetchval(
                "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1::text[])",
                [credentials.writer, credentials.reader],
            )
            # an administrator runs the SQL; the plain role still owns no table to grant on
            await conn.execute(caught.value.sql)
        finally:
            await conn.close()
        with pytest.raises(MigrationError, match="cannot create or grant"):
            await ensure_roles(role_url(fresh_database, plain, "plain"), credentials)
    finally:
        await drop_roles(fresh_database, [plain, *role_names(name)])


async def test_local_services_give_the_processor_the_writer_and_queries_the_reader(
    fresh_database: str, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from claw_ledger.cli.common import processor_config
    from claw_ledger.services import manager
    from claw_ledger.services import postgres as pg_mod

    parts = urlsplit(fresh_database)
    if parts.username != pg_mod.PG_USER or parts.hostname != pg_mod.HOST or parts.password:
        pytest.skip("the record of `services up` names the local superuser on 127.0.0.1")
    name = parts.path[1:]
    monkeypatch.setattr(pg_mod, "DATABASE", name)
    for variable in list(os.environ):
        if variable.startswith("CLAW_LEDGER_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("CLAW_LEDGER_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CLAW_LEDGER_KAFKA", kafka_bootstrap)  # only Postgres is "local"
    monkeypatch.chdir(tmp_path)
    # what `services up` records for its server (this process stands in for the postmaster)
    server = pg_mod.PostgresProcess(pid=os.getpid(), port=parts.port or 5432, data_dir=tmp_path)
    settings = load_settings()
    manager._write_record(settings, {"postgres": manager._postgres_record(settings, server)})
    assert (tmp_path / "services.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "db-roles.json").stat().st_mode & 0o777 == 0o600
    try:
        result = await _invoke(["migrate"])
        assert result.exit_code == 0, result.output
        writer, reader = role_names(name)
        assert f"created role {writer}" in result.output

        config = processor_config("verifier", 10)
        settings = load_settings()
        for url, expected in (
            (config.database_url, writer),
            (effective_database_url(settings, role="reader"), reader),
            (effective_database_url(settings), pg_mod.PG_USER),
        ):
            conn = await asyncpg.connect(url)
            try:
                assert await conn.fetchval("SELECT current_user") == expected
            finally:
                await conn.close()

        listed = await _invoke(["keys", "list", "--json"])
        assert listed.exit_code == 0, listed.output

        # an explicit writer URL wins over the record
        monkeypatch.setenv("CLAW_LEDGER_WRITER_URL", effective_database_url(settings))
        assert processor_config("verifier", 10).database_url == effective_database_url(settings)
    finally:
        await drop_roles(fresh_database, list(role_names(name)))
