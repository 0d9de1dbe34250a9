"""Schema migrations (``storage.migrate``, ``claw-ledger migrate``) on a real Postgres:
applied once and in order, never concurrently twice, and refused when the files and the
database disagree."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from claw_ledger.cli import cli
from ledger.errors import MigrationError
from storage import connect
from storage.migrate import check_schema, discover_migrations, migrate, schema_version
from tests.fixtures_ledger import unconfigured_cli_env


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


_M1 = "CREATE TABLE a (id int PRIMARY KEY);\nCREATE INDEX a_idx ON a (id);\n"
_M2 = "CREATE TABLE b (id int PRIMARY KEY, a int REFERENCES a (id));\n"


@pytest.mark.integration
async def test_migrate_is_idempotent(empty_database: str, tmp_path: Path) -> None:
    directory = _write(tmp_path / "m", {"0001_a.sql": _M1, "0002_b.sql": _M2})
    first = await migrate(empty_database, directory=directory)
    assert [m.version for m in first.applied] == [1, 2] and first.version == 2
    second = await migrate(empty_database, directory=directory)
    assert second.applied == () and second.already_applied == 2 and second.version == 2
    conn = await connect(empty_database)
    try:
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY 1")
    finally:
        await conn.close()
    files = discover_migrations(directory)
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (m.version, m.name, m.checksum) for m in files
    ]
    assert await schema_version(empty_database) == 2
    assert await check_schema(empty_database, directory=directory) == 2


@pytest.mark.integration
async def test_concurrent_migrates_do_not_race(empty_database: str, tmp_path: Path) -> None:
    slow = "SELECT pg_sleep(0.5);\n" + _M1
    directory = _write(tmp_path / "m", {"0001_a.sql": slow, "0002_b.sql": _M2})
    reports = await asyncio.gather(
        *(migrate(empty_database, directory=directory) for _ in range(3))
    )
    assert sorted(len(r.applied) for r in reports) == [0, 0, 2]
    assert all(r.version == 2 for r in reports)


@pytest.mark.integration
async def test_migrate_refuses_newer_database(empty_database: str, tmp_path: Path) -> None:
    new = _write(tmp_path / "new", {"0001_a.sql": _M1, "0002_b.sql": _M2})
    old = _write(tmp_path / "old", {"0001_a.sql": _M1})
    await migrate(empty_database, directory=new)
    with pytest.raises(MigrationError, match="newer than this code") as info:
        await migrate(empty_database, directory=old)
    assert info.value.hint and "upgrade" in info.value.hint
    with pytest.raises(MigrationError, match="upgrade"):
        await check_schema(empty_database, directory=old)


@pytest.mark.integration
async def test_migrate_refuses_changed_migration(empty_database: str, tmp_path: Path) -> None:
    directory = _write(tmp_path / "m", {"0001_a.sql": _M1})
    await migrate(empty_database, directory=directory)
    (directory / "0001_a.sql").write_text(_M1 + "CREATE TABLE sneaky (x int);\n")
    with pytest.raises(MigrationError, match="changed after it was applied") as info:
        await migrate(empty_database, directory=directory)
    assert info.value.hint and "new migration" in info.value.hint
    # line ends alone are not a change
    (directory / "0001_a.sql").write_text(_M1.replace("\n", "\r\n"))
    assert (await migrate(empty_database, directory=directory)).applied == ()


@pytest.mark.integration
async def test_failed_migration_is_rolled_back(empty_database: str, tmp_path: Path) -> None:
    bad = "CREATE TABLE c (id int);\nTHIS IS NOT SQL;\n"
    directory = _write(tmp_path / "m", {"0001_a.sql": _M1, "0002_c.sql": bad})
    with pytest.raises(MigrationError, match=r"0002_c\.sql failed"):
        await migrate(empty_database, directory=directory)
    assert await schema_version(empty_database) == 1
    conn = await connect(empty_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('c')") is None
    finally:
        await conn.close()
    # a new file below an applied version is refused
    _write(tmp_path / "m", {"0002_c.sql": _M2, "0000_zero.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="older than the applied"):
        await migrate(empty_database, directory=directory)


def test_migration_files_must_be_well_named(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="NNNN_name"):
        discover_migrations(_write(tmp_path / "a", {"1_init.sql": "SELECT 1;"}))
    with pytest.raises(MigrationError, match="does not exist"):
        discover_migrations(tmp_path / "missing")
    assert [m.version for m in discover_migrations()] == sorted(
        m.version for m in discover_migrations()
    )


@pytest.mark.integration
def test_migrate_cli(empty_database: str, tmp_path: Path) -> None:
    directory = _write(tmp_path / "m", {"0001_a.sql": _M1})
    runner = CliRunner()
    args = ["migrate", "--database-url", empty_database, "--migrations", str(directory)]
    first = runner.invoke(cli, [*args, "--json"], env={"CLAW_LEDGER_CONFIG": None})
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["applied"] == [{"version": 1, "name": "a"}]
    again = runner.invoke(cli, args, env={"CLAW_LEDGER_CONFIG": None})
    assert again.exit_code == 0 and "up to date" in again.output
    (directory / "0001_a.sql").write_text("SELECT 2;\n")
    refused = runner.invoke(cli, args, env={"CLAW_LEDGER_CONFIG": None})
    assert refused.exit_code == 2 and "changed after it was applied" in refused.output


def test_migrate_cli_without_database_says_services_up(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["migrate"],
        env={**unconfigured_cli_env(tmp_path / "state"), "CLAW_LEDGER_DATABASE_URL": None},
    )
    assert result.exit_code == 2 and "claw-ledger services up" in result.output
