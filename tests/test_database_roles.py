"""Which database URL each role gets, and the role names and SQL (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claw_ledger.config import Settings, effective_database_url, load_settings
from claw_ledger.db_roles import role_credentials, role_urls
from ledger.errors import ConfigError
from storage.roles import RoleCredentials, role_names, role_url, roles_sql

OWNER = "postgresql://postgres@127.0.0.1:5432/claw_ledger"
WRITER = "postgresql://w:pw@127.0.0.1:5432/claw_ledger"
READER = "postgresql://r:pr@127.0.0.1:5432/claw_ledger"
GIVEN = "postgresql://admin:secret@db.example:5432/claw_ledger"


def _record(state_dir: Path, postgres: dict[str, object]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "services.json").write_text(json.dumps({"postgres": postgres}))


def _settings(tmp_path: Path, **env: str) -> Settings:
    return load_settings(
        env={"CLAW_LEDGER_STATE_DIR": str(tmp_path / "state"), **env}, cwd=tmp_path
    )


def test_the_record_gives_each_role_its_own_url(tmp_path: Path) -> None:
    _record(
        tmp_path / "state",
        {"managed": False, "url": OWNER, "writer_url": WRITER, "reader_url": READER},
    )
    settings = _settings(tmp_path)
    assert effective_database_url(settings) == OWNER
    assert effective_database_url(settings, role="owner") == OWNER
    assert effective_database_url(settings, role="writer") == WRITER
    assert effective_database_url(settings, role="reader") == READER


def test_a_record_without_roles_serves_every_role_with_its_url(tmp_path: Path) -> None:
    _record(tmp_path / "state", {"managed": False, "url": OWNER})
    settings = _settings(tmp_path)
    for role in ("owner", "writer", "reader"):
        assert effective_database_url(settings, role=role) == OWNER


def test_a_given_database_url_wins_over_the_record_for_every_role(tmp_path: Path) -> None:
    _record(
        tmp_path / "state",
        {"managed": False, "url": OWNER, "writer_url": WRITER, "reader_url": READER},
    )
    settings = _settings(tmp_path, CLAW_LEDGER_DATABASE_URL=GIVEN)
    for role in ("owner", "writer", "reader"):
        assert effective_database_url(settings, role=role) == GIVEN


def test_a_given_role_url_wins_over_the_database_url(tmp_path: Path) -> None:
    settings = _settings(tmp_path, CLAW_LEDGER_DATABASE_URL=GIVEN, CLAW_LEDGER_WRITER_URL=WRITER)
    assert effective_database_url(settings, role="writer") == WRITER
    assert effective_database_url(settings, role="reader") == GIVEN
    assert effective_database_url(settings, role="owner") == GIVEN


def test_role_urls_are_checked_like_the_database_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reader_url from \\$CLAW_LEDGER_READER_URL"):
        _settings(tmp_path, CLAW_LEDGER_READER_URL="mysql://x")


def test_no_database_at_all_says_services_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="services up"):
        effective_database_url(_settings(tmp_path), role="reader")


def test_role_names_follow_the_database_and_fit_postgres() -> None:
    assert role_names("claw_ledger") == ("claw_ledger_writer", "claw_ledger_reader")
    long_a, long_b = "x" * 70 + "a", "x" * 70 + "b"
    writer_a, reader_a = role_names(long_a)
    assert len(writer_a.encode()) <= 63 and len(reader_a.encode()) <= 63
    assert role_names(long_b)[0] != writer_a  # cut names stay distinct


def test_role_url_replaces_user_and_quotes_the_password() -> None:
    url = role_url(GIVEN, "claw_ledger_writer", "p@ss:/word")
    assert url == "postgresql://claw_ledger_writer:p%40ss%3A%2Fword@db.example:5432/claw_ledger"


def test_the_sql_quotes_names_and_passwords() -> None:
    sql = roles_sql(RoleCredentials('we"ird', "it's", "reader", "pw"))
    assert 'CREATE ROLE "we""ird"' in sql
    assert "PASSWORD 'it''s'" in sql
    assert "SELECT claw_ledger_grant_roles('we\"ird', 'reader');" in sql


def test_passwords_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = role_credentials(tmp_path, "claw_ledger")
    assert first == role_credentials(tmp_path, "claw_ledger")
    other = role_credentials(tmp_path, "claw_other")
    assert other.writer == "claw_other_writer"
    assert other.writer_password not in (first.writer_password, first.reader_password)
    assert role_credentials(tmp_path, "claw_ledger") == first  # a second database keeps the first
    path = tmp_path / "db-roles.json"
    assert path.stat().st_mode & 0o777 == 0o600
    writer_url, reader_url = role_urls(tmp_path, OWNER)
    assert writer_url.startswith(f"postgresql://claw_ledger_writer:{first.writer_password}@")
    assert reader_url.startswith(f"postgresql://claw_ledger_reader:{first.reader_password}@")
