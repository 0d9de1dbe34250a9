"""Migration 0009 on a ledger that already holds halts and tokens: old halts read as
deny-all with nothing revoked, token digests are untouched, and the halts digest is
resealed by the first processor start (ADR 0014, ADR 0016)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from consumers.processor import VerifyingProcessor
from ledger.control_digest import digest_hex, parse_digest, table_digest
from storage import postgres as store
from storage.migrate import MIGRATIONS_DIR, migrate

pytestmark = pytest.mark.integration

_OLD_HALT = {
    "target": "job:old",
    "active": True,
    "reason": "before the kill switch",
    "halted_by": "did:key:z6Mkoperator",
    "halted_at": "2026-11-01T00:00:00.000Z",
    "halted_event_id": "00000000-0000-4000-8000-000000000001",
}
_OLD_TOKEN = {
    "jti": "cst_old",
    "status": "active",
    "sub": "agent:old",
    "aud": "clawproxy",
    "scope": ["tools:read"],
    "iat": 1_700_000_000,
    "exp": 1_700_000_900,
    "kid": "0123456789abcdef",
    "issuer_did": "did:key:z6Mkissuer",
    "token_scope_hash_b64u": "s" * 43,
    "token_sha256_b64u": "t" * 43,
    "issued_event_id": "00000000-0000-4000-8000-000000000002",
    "issued_at": "2026-11-01T00:00:00.000Z",
}


_JSONB = frozenset({"aud", "scope"})


async def _insert(conn: asyncpg.Connection, table: str, row: dict[str, object]) -> None:
    casts = [f"${i}::jsonb" if k in _JSONB else f"${i}" for i, k in enumerate(row, start=1)]
    args = [json.dumps(v) if k in _JSONB else v for k, v in row.items()]
    # table and column names are constants of this test
    sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(casts)})"
    await conn.execute(sql, *args)


async def test_old_halts_are_deny_all_and_resealed(empty_database: str, tmp_path: Path) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(Path(str(MIGRATIONS_DIR)).glob("*.sql")):
        if int(path.name[:4]) < 9:
            shutil.copy(path, before / path.name)
    await migrate(empty_database, directory=before)

    conn = await asyncpg.connect(empty_database)
    try:
        # rows as the rules wrote them before 0009, with their digests sealed
        await _insert(conn, "halts", _OLD_HALT)
        await _insert(conn, "tokens", _OLD_TOKEN)
        for table, row in (("halts", _OLD_HALT), ("tokens", _OLD_TOKEN)):
            await conn.execute(
                "UPDATE control_digests SET digest = $2 WHERE table_name = $1",
                table,
                digest_hex(table_digest(table, [row])),
            )
        await migrate(empty_database)
        digests = {
            r["table_name"]: parse_digest(r["digest"])
            for r in await conn.fetch("SELECT table_name, digest FROM control_digests")
        }
        halt = await conn.fetchrow("SELECT * FROM halts WHERE target = 'job:old'")
        token = await conn.fetchrow("SELECT * FROM tokens WHERE jti = 'cst_old'")
    finally:
        await conn.close()
    assert halt is not None and token is not None
    assert halt["deny_tools"] is True and halt["deny_model_egress"] is True
    assert json.loads(halt["revoked_jtis"]) == []
    assert halt["policy_hash_b64u"] is None and halt["resume_policy_hash_b64u"] is None
    assert token["revoked_by_halt"] is None
    # a NULL column is left out of a row's digest: the tokens digest still holds
    assert digests["tokens"] == table_digest("tokens", [_OLD_TOKEN])
    assert digests["halts"] is None  # unsealed: the rows' encoding changed

    pool = await asyncpg.create_pool(empty_database, min_size=1, init=store.init_connection)
    try:
        ledger = store.PostgresLedgerStore(pool)
        await ledger.set_trust_root("did:key:z6Mkadmin")
        processor = VerifyingProcessor(ledger, group="g", topic="t", trust_root=None)
        await processor.start()  # seals halts, checks tokens
        assert processor.control.state.halts["job:old"]["deny_tools"] is True
        _, state, stored = await ledger.load_state_with_digests(None)
    finally:
        await pool.close()
    assert stored["halts"] == table_digest("halts", state.halts.values())
    assert stored["tokens"] == table_digest("tokens", state.tokens.values())
