"""The SQL of the authorize service (ADR 0015): its control state, the
processor heartbeats it measures freshness against, and the nonce store.

The control rows are read with the processor's own loaders
(:func:`storage.postgres.load_state_with_digests`, then
:func:`storage.postgres.load_state_snapshot` with ``since``: only what changed,
ADR 0007). Commits that move the control version notify
:data:`storage.postgres.CONTROL_CHANNEL`; :meth:`AuthorizeStore.listen` follows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import NamedTuple

import asyncpg

from ledger.errors import ServiceError
from ledger.state import LedgerState
from storage import keep_session, quiet_pool_reconnects
from storage.postgres import (
    CONTROL_CHANNEL,
    init_connection,
    load_state_snapshot,
    load_state_with_digests,
)

__all__ = [
    "AuthorizeStore",
    "GroupedClaims",
    "Heartbeat",
    "NonceClaim",
    "claim_nonces",
    "control_positions",
    "read_heartbeat",
    "seen_outcomes",
]

#: what a lost or refusing database raises (turned into ServiceError here)
_UNREACHABLE = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

#: a statement of the decision path never waits longer than this (seconds)
STATEMENT_TIMEOUT = 2.0


@dataclass(frozen=True)
class Heartbeat:
    """The newest processor heartbeat: how old it was when read (by the
    database's clock, so the two clocks never mix) and its control version."""

    age_seconds: float
    control_version: int


async def read_heartbeat(conn: asyncpg.Connection) -> Heartbeat | None:
    row = await conn.fetchrow(
        "SELECT extract(epoch FROM now() - beat_at)::float8 AS age, control_version"
        " FROM processor_heartbeats ORDER BY beat_at DESC LIMIT 1",
        timeout=STATEMENT_TIMEOUT,
    )
    if row is None:
        return None
    return Heartbeat(max(0.0, float(row["age"])), int(row["control_version"]))


class NonceClaim(NamedTuple):
    token_jti: str
    nonce: str
    decision_id: str


async def claim_nonces(conn: asyncpg.Connection, claims: Sequence[NonceClaim]) -> set[str]:
    """Use every claim's nonce for its token in one statement: the decision ids of
    the claims that were first, at any process, ever. Two claims of one nonce in
    ``claims``: the first listed wins."""
    rows = await conn.fetch(
        "INSERT INTO authorize_nonces (token_jti, nonce, decision_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
        " ON CONFLICT (token_jti, nonce) DO NOTHING RETURNING decision_id",
        [c.token_jti for c in claims],
        [c.nonce for c in claims],
        [c.decision_id for c in claims],
        timeout=STATEMENT_TIMEOUT,
    )
    return {row["decision_id"] for row in rows}


class GroupedClaims:
    """Nonce claims written together: those that arrive while one statement is on
    its way go in the next, one statement and one WAL flush for all (ADR 0028).

    A claim waits at most for the statement in flight and its own; under load
    the statements grow instead of queueing. A failed statement fails each of
    its claims (the decision path then answers unavailable: fail closed).
    """

    def __init__(
        self, write: Callable[[list[NonceClaim]], Awaitable[set[str]]], *, max_batch: int = 500
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._pending: list[tuple[NonceClaim, asyncio.Future[bool]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def claim(self, claim: NonceClaim) -> bool:
        """True when ``claim`` was the first use of its nonce for its token."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((claim, answer))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_pending(), name="nonce-claims")
        return await answer

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write_batch(batch)
        finally:
            self._writing = None
            for _, answer in self._pending:  # only left when this task was cancelled
                if not answer.done():
                    answer.set_exception(ServiceError("the nonce store is closing"))
            self._pending.clear()

    async def _write_batch(self, batch: list[tuple[NonceClaim, asyncio.Future[bool]]]) -> None:
        first: dict[tuple[str, str], NonceClaim] = {}
        for claim, _ in batch:
            first.setdefault((claim.token_jti, claim.nonce), claim)
        try:
            fresh = await self._write(list(first.values()))
        except Exception as exc:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(ServiceError("the nonce store is closing"))
            raise
        for claim, answer in batch:
            if not answer.done():
                # a second claim of one nonce in the batch is a replay of the first
                won = first[(claim.token_jti, claim.nonce)] is claim
                answer.set_result(won and claim.decision_id in fresh)


async def control_positions(conn: asyncpg.Connection, topic: str) -> dict[int, int]:
    """Per partition of ``topic``, the lowest next offset any processor group
    committed: everything before it is decided (committed or quarantined)."""
    rows = await conn.fetch(
        "SELECT kafka_partition, min(next_offset) AS next_offset FROM consumer_positions"
        " WHERE topic = $1 GROUP BY kafka_partition",
        topic,
        timeout=STATEMENT_TIMEOUT,
    )
    return {int(r["kafka_partition"]): int(r["next_offset"]) for r in rows}


async def seen_outcomes(
    conn: asyncpg.Connection, events: dict[str, str]
) -> dict[str, tuple[str | None, str | None]]:
    """What the ledger decided on seen control events (``events``: event id ->
    SHA-256 b64u of the exact bytes seen): per event id that it decided, the
    payload hash recorded under that id (``None``: none) and the reason of a
    quarantine row of those very bytes (``None``: none). A quarantine row of
    other bytes under the same id says nothing about these (anyone can send those)."""
    ids = list(events)
    committed = await conn.fetch(
        "SELECT event_id::text AS event_id, payload_hash_b64u FROM events"
        " WHERE event_id = ANY($1::uuid[])",
        ids,
        timeout=STATEMENT_TIMEOUT,
    )
    quarantined = await conn.fetch(
        "SELECT event_id, reason_code, detail,"
        " rtrim(translate(encode(sha256(raw), 'base64'), '+/', '-_'), '=') AS sha"
        " FROM quarantine WHERE event_id = ANY($1::text[])",
        ids,
        timeout=STATEMENT_TIMEOUT,
    )
    out: dict[str, tuple[str | None, str | None]] = {
        r["event_id"]: (r["payload_hash_b64u"], None) for r in committed
    }
    for r in quarantined:
        if r["sha"] == events.get(r["event_id"]) and r["event_id"] not in out:
            out[r["event_id"]] = (None, f"{r['reason_code']}: {r['detail']}")
    return out


class AuthorizeStore:
    """A pool for reads and nonces, and one connection that listens for control commits."""

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self._url = url
        self._pool = pool
        self._listener: asyncpg.Connection | None = None
        self._claims = GroupedClaims(self._write_claims)

    @classmethod
    async def open(cls, url: str, *, max_size: int = 4) -> AuthorizeStore:
        """A store on a new pool; :class:`ServiceError` when the database does not answer."""
        quiet_pool_reconnects()
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_size,
                init=init_connection,
                # single statements, and the LISTEN has a connection of its own
                reset=keep_session,
                timeout=STATEMENT_TIMEOUT,
            )
        except _UNREACHABLE as exc:
            raise ServiceError(f"the ledger database cannot be reached: {exc!r}") from exc
        return cls(url, pool)

    async def close(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.terminate()
        self._pool.terminate()

    async def listen(self, on_commit: Callable[[], None]) -> bool:
        """Call ``on_commit`` at every control commit; re-listens after a lost
        connection. False when it could not listen now (polling still works)."""
        if self._listener is not None and not self._listener.is_closed():
            return True
        try:
            listener = await asyncpg.connect(self._url, timeout=STATEMENT_TIMEOUT)
            await listener.add_listener(CONTROL_CHANNEL, lambda *_: on_commit())
        except _UNREACHABLE:
            return False
        self._listener = listener
        return True

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; an unreachable database is a :class:`ServiceError`."""
        try:
            async with self._pool.acquire(timeout=STATEMENT_TIMEOUT) as conn:
                yield conn
        except _UNREACHABLE as exc:
            raise ServiceError(f"the ledger database cannot be read: {exc!r}") from exc

    async def heartbeat(self) -> Heartbeat | None:
        async with self._conn() as conn:
            return await read_heartbeat(conn)

    async def load_all(self) -> tuple[int, LedgerState, dict[str, int | None]]:
        """The whole control state, its version and the stored digests (one snapshot)."""
        async with self._conn() as conn:
            return await load_state_with_digests(conn, None)

    async def load_since(self, version: int, into: LedgerState) -> int:
        """Apply the control rows written after ``version`` onto ``into``; the new version."""
        async with self._conn() as conn:
            new_version, _ = await load_state_snapshot(conn, None, since=version, into=into)
            return new_version

    async def control_version(self) -> int:
        async with self._conn() as conn:
            return int(
                await conn.fetchval(
                    "SELECT version FROM control_state WHERE id = 1", timeout=STATEMENT_TIMEOUT
                )
            )

    async def claim_nonce(self, jti: str, nonce: str, decision_id: str) -> bool:
        """True the first time ``nonce`` is used for ``jti``; written with the claims
        of concurrent decisions (:class:`GroupedClaims`)."""
        return await self._claims.claim(NonceClaim(jti, nonce, decision_id))

    async def _write_claims(self, claims: list[NonceClaim]) -> set[str]:
        async with self._conn() as conn:
            return await claim_nonces(conn, claims)

    async def control_positions(self, topic: str) -> dict[int, int]:
        async with self._conn() as conn:
            return await control_positions(conn, topic)

    async def seen_outcomes(
        self, events: dict[str, str]
    ) -> dict[str, tuple[str | None, str | None]]:
        async with self._conn() as conn:
            return await seen_outcomes(conn, events)
