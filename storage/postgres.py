"""The ledger in Postgres (asyncpg): :class:`PostgresLedgerStore` and its SQL.

Exactly-once: the effects of a batch (ledger rows, quarantine rows,
projection rows) and the consumer position of its partition are written in one
transaction, guarded by the stored position, so a re-delivered batch is a
no-op and a crash mid-batch leaves nothing half-written.

The module functions take a connection (``init`` and tests use them directly);
the store runs each on a connection of its pool.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import asyncpg

from ledger.batch import EventRow, Outcome, PartitionPosition
from ledger.control_digest import (
    CONTROL_DIGEST_TABLES,
    digest_delta,
    digest_hex,
    parse_digest,
)
from ledger.errors import EventError, ReasonCode, StaleBatchError
from ledger.state import KeyRecord, LedgerState, ProjectionRow
from storage import keep_session
from storage.partitions import ensure_partitions, is_missing_partition
from storage.protocol import (
    INSERT_ONLY_TABLES,
    NO_COMMITS,
    BatchCommit,
    CommitTimings,
    ControlQuery,
    ControlRead,
    ControlStart,
)

__all__ = [
    "CONTROL_CHANNEL",
    "CONTROL_TABLES",
    "CONTROL_VERSION_COLUMN",
    "EVENT_COLUMNS",
    "EventRow",
    "PostgresLedgerStore",
    "bump_control_version",
    "commit_batch",
    "control_digests",
    "control_row",
    "control_version",
    "existing_payload_hashes",
    "init_connection",
    "load_positions",
    "load_state",
    "load_state_snapshot",
    "load_state_with_digests",
    "other_groups",
    "record_forwarded",
    "seal_control_digests",
    "set_trust_root",
    "trust_root",
    "unforwarded_outcomes",
    "write_heartbeat",
]

#: LISTEN/NOTIFY channel: every commit that moves the control version notifies
#: it (payload: the new version) in its transaction, so a follower of the
#: control state (the authorize service, ADR 0015) learns of it on commit
CONTROL_CHANNEL = "claw_ledger_control"

#: Control-plane projections loaded into LedgerState besides ``keys``.
CONTROL_TABLES: dict[str, str] = {
    "policies": "policy_hash_b64u",
    "tokens": "jti",
    "jobs": "job_id",
    "halts": "target",
    "shadows": "scope",
}

#: The column in which every control-plane row records the control version of
#: the commit that last wrote it (migration 0004).
CONTROL_VERSION_COLUMN = "control_version"
_VERSIONED_TABLES = frozenset({"keys", *CONTROL_TABLES})

#: EventRow's fields in order, then the two the batch adds
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "stream",
    "producer",
    "occurred_at",
    "payload_hash_b64u",
    "envelope_sha256",
    "envelope_raw",
    "payload",
    "kafka_offset",
    "ledger_seq",
    "prev_chain_hash",
    "chain_hash",
    "kafka_topic",
    "kafka_partition",
)

_QUARANTINE_COLUMNS = (
    "reason_code",
    "detail",
    "raw",
    "raw_size",
    "event_id",
    "signer_did",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)


def _encode_jsonb(value: Any) -> bytes:
    # bytes are JSON already serialised by the caller (the hot path: event payloads)
    text = value if isinstance(value, bytes) else json.dumps(value).encode("utf-8")
    return b"\x01" + text


def _decode_jsonb(data: bytes) -> Any:
    return json.loads(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs: jsonb in binary format (COPY needs it), as Python values."""
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


async def record_forwarded(
    conn: asyncpg.Connection,
    group: str,
    topic: str,
    marks: Mapping[int, int],
    since: Mapping[int, int] | None = None,
) -> None:
    """Record that every outcome below ``marks[partition]`` is on its topic (with
    ``since``: only where the recorded mark has reached ``since[partition]``)."""
    await conn.executemany(
        "UPDATE consumer_positions SET forwarded_offset = $4"
        " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3"
        " AND forwarded_offset < $4 AND forwarded_offset >= $5",
        [
            (group, topic, partition, offset, 0 if since is None else since[partition])
            for partition, offset in marks.items()
        ],
    )


async def unforwarded_outcomes(
    conn: asyncpg.Connection, group: str, topic: str, partition: int
) -> tuple[int, list[Outcome]]:
    """The committed outcomes of ``partition`` not yet acknowledged on their
    topics, in offset order, and the mark to record once they are."""
    row = await conn.fetchrow(
        "SELECT next_offset, forwarded_offset FROM consumer_positions"
        " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = $3",
        group,
        topic,
        partition,
    )
    if row is None or row["forwarded_offset"] >= row["next_offset"]:
        return (row["next_offset"] if row else 0), []
    bounds = (topic, partition, row["forwarded_offset"], row["next_offset"])
    accepted = await conn.fetch(
        "SELECT kafka_offset, stream, envelope_raw FROM events WHERE kafka_topic = $1"
        " AND kafka_partition = $2 AND kafka_offset >= $3 AND kafka_offset < $4",
        *bounds,
    )
    refused = await conn.fetch(
        "SELECT kafka_offset, raw, reason_code FROM quarantine WHERE kafka_topic = $1"
        " AND kafka_partition = $2 AND kafka_offset >= $3 AND kafka_offset < $4",
        *bounds,
    )
    outcomes = [
        Outcome(partition, r["kafka_offset"], r["stream"].encode(), r["envelope_raw"])
        for r in accepted
    ] + [Outcome(partition, r["kafka_offset"], None, r["raw"], r["reason_code"]) for r in refused]
    outcomes.sort(key=lambda o: o.offset)
    return row["next_offset"], outcomes


async def load_positions(
    conn: asyncpg.Connection, group: str, topic: str
) -> dict[int, PartitionPosition]:
    rows = await conn.fetch(
        "SELECT kafka_partition, next_offset, ledger_seq, chain_hash FROM consumer_positions"
        " WHERE consumer_group = $1 AND topic = $2",
        group,
        topic,
    )
    return {
        r["kafka_partition"]: PartitionPosition(r["next_offset"], r["ledger_seq"], r["chain_hash"])
        for r in rows
    }


async def control_version(conn: asyncpg.Connection) -> int:
    """The committed control-plane version (bumped by every commit that changes it)."""
    return int(await conn.fetchval("SELECT version FROM control_state WHERE id = 1"))


async def bump_control_version(conn: asyncpg.Connection) -> int:
    """Inside a transaction: increment and return the version (row-locked until
    commit), and notify :data:`CONTROL_CHANNEL` (delivered on commit)."""
    version = int(
        await conn.fetchval(
            "UPDATE control_state SET version = version + 1 WHERE id = 1 RETURNING version"
        )
    )
    await conn.execute("SELECT pg_notify($1, $2)", CONTROL_CHANNEL, str(version))
    return version


async def write_heartbeat(
    conn: asyncpg.Connection,
    worker_id: str,
    group: str,
    version: int,
    timings: CommitTimings = NO_COMMITS,
) -> None:
    """Record that processor ``worker_id`` is alive, its state holds ``version``,
    and what its commits took (``timings``)."""
    await conn.execute(
        "INSERT INTO processor_heartbeats (worker_id, consumer_group, beat_at, control_version,"
        " batches, batch_seconds_sum, batch_seconds_max)"
        " VALUES ($1, $2, now(), $3, $4, $5, $6) ON CONFLICT (worker_id) DO UPDATE SET"
        " beat_at = now(), control_version = EXCLUDED.control_version,"
        " consumer_group = EXCLUDED.consumer_group, batches = EXCLUDED.batches,"
        " batch_seconds_sum = EXCLUDED.batch_seconds_sum,"
        " batch_seconds_max = EXCLUDED.batch_seconds_max",
        worker_id,
        group,
        version,
        timings.batches,
        timings.seconds_sum,
        timings.seconds_max,
    )


async def load_state_snapshot(
    conn: asyncpg.Connection,
    configured_trust_root: str | None,
    *,
    since: int | None = None,
    into: LedgerState | None = None,
) -> tuple[int, LedgerState]:
    """Version and state read in one snapshot, so they always belong together.

    With ``since`` (a version whose state ``into`` holds), only the rows
    written after it are read and applied onto ``into``.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await control_version(conn)
        root = configured_trust_root or await trust_root(conn)
        return version, await load_state(conn, root, since=since, into=into)


async def control_digests(conn: asyncpg.Connection) -> dict[str, int | None]:
    """The stored digest of each control-plane table (``None``: not sealed yet)."""
    rows = await conn.fetch("SELECT table_name, digest FROM control_digests")
    return {r["table_name"]: parse_digest(r["digest"]) for r in rows}


async def load_state_with_digests(
    conn: asyncpg.Connection, configured_trust_root: str | None
) -> tuple[int, LedgerState, dict[str, int | None]]:
    """The whole control state, its version and the stored digests, in one snapshot."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        version = await control_version(conn)
        root = configured_trust_root or await trust_root(conn)
        state = await load_state(conn, root)
        return version, state, await control_digests(conn)


def control_row(record: asyncpg.Record) -> dict[str, Any]:
    """A control-plane row as the state holds it (without the bookkeeping column)."""
    return {k: v for k, v in record.items() if k != CONTROL_VERSION_COLUMN}


async def seal_control_digests(
    conn: asyncpg.Connection, version: int, digests: Mapping[str, int]
) -> bool:
    """Record the digests of tables not sealed yet, computed from the state of
    ``version``; nothing (``False``) when the control plane has moved since."""
    async with conn.transaction():
        current = await conn.fetchval("SELECT version FROM control_state WHERE id = 1 FOR UPDATE")
        if current != version:
            return False
        await conn.executemany(
            "UPDATE control_digests SET digest = $2 WHERE table_name = $1 AND digest IS NULL",
            [(table, digest_hex(digest)) for table, digest in digests.items()],
        )
        return True


async def _move_digests(conn: asyncpg.Connection, projections: Sequence[ProjectionRow]) -> None:
    """Inside the commit, before the upsert: move each touched table's digest
    from its stored rows to what the upsert makes of them."""
    by_table: dict[str, list[ProjectionRow]] = {}
    for row in projections:
        if row.table in CONTROL_DIGEST_TABLES:
            by_table.setdefault(row.table, []).append(row)
    if not by_table:
        return
    stored = {
        r["table_name"]: parse_digest(r["digest"])
        for r in await conn.fetch(
            "SELECT table_name, digest FROM control_digests WHERE table_name = ANY($1::text[])"
            " FOR UPDATE",
            list(by_table),
        )
    }
    updates = []
    for table, changes in by_table.items():
        digest = stored.get(table)
        if digest is None:  # not sealed yet: the first processor start computes it
            continue
        key_column = changes[0].key_column
        keys = list({c.values[key_column] for c in changes})
        old = {
            r[key_column]: {k: v for k, v in r.items() if k != CONTROL_VERSION_COLUMN}
            # table and column names are constants
            for r in await conn.fetch(
                f"SELECT * FROM {table} WHERE {key_column} = ANY($1::text[])", keys
            )
        }
        updates.append((table, digest_hex(digest + digest_delta(table, old, changes))))
    if updates:
        await conn.executemany(
            "UPDATE control_digests SET digest = $2 WHERE table_name = $1", updates
        )


async def other_groups(conn: asyncpg.Connection, group: str, topic: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT consumer_group FROM consumer_positions"
        " WHERE topic = $1 AND consumer_group <> $2",
        topic,
        group,
    )
    return [r["consumer_group"] for r in rows]


async def trust_root(conn: asyncpg.Connection) -> str | None:
    """The DID of the first admin key, recorded by ``claw-ledger init``."""
    value = await conn.fetchval("SELECT value FROM ledger_meta WHERE key = 'trust_root'")
    return str(value) if value is not None else None


async def set_trust_root(conn: asyncpg.Connection, did: str) -> None:
    """Record the trust root once; bump the control version so processors reload."""
    async with conn.transaction():
        existing = await trust_root(conn)
        if existing is not None and existing != did:
            raise EventError(
                ReasonCode.TRUST_ROOT_EXISTS,
                f"this ledger already has the trust root {existing}",
                hint="use that admin key; a ledger has exactly one trust root",
            )
        await conn.execute(
            "INSERT INTO ledger_meta (key, value) VALUES ('trust_root', $1) ON CONFLICT DO NOTHING",
            did,
        )
        await bump_control_version(conn)


async def load_state(
    conn: asyncpg.Connection,
    trust_root: str | None,
    *,
    since: int | None = None,
    into: LedgerState | None = None,
    tables: Collection[str] | None = None,
) -> LedgerState:
    """The control state from its tables (all of them, or those named in ``tables``).

    With ``since``, only rows whose ``control_version`` is newer are read, and
    they replace their keys in ``into`` (projections are upserted, never
    deleted, so the newest row of each key is the whole story).
    """
    state = into if into is not None else LedgerState()
    state.trust_root = trust_root
    where, args = ("", ()) if since is None else (f" WHERE {CONTROL_VERSION_COLUMN} > $1", (since,))
    # table names are constants
    if tables is None or "keys" in tables:
        for r in await conn.fetch("SELECT * FROM keys" + where, *args):
            state.keys[r["did"]] = KeyRecord.from_row(r)
    for table, key in CONTROL_TABLES.items():
        if tables is not None and table not in tables:
            continue
        target: dict[str, dict[str, Any]] = getattr(state, table)
        for r in await conn.fetch(f"SELECT * FROM {table}{where}", *args):
            target[r[key]] = control_row(r)
    return state


async def existing_payload_hashes(
    conn: asyncpg.Connection, event_ids: Sequence[str]
) -> dict[str, str]:
    if not event_ids:
        return {}
    rows = await conn.fetch(
        # event_keys, not events: it holds archived events too (migration 0017)
        "SELECT event_id::text AS event_id, payload_hash_b64u FROM event_keys"
        " WHERE event_id = ANY($1::uuid[])",
        list(event_ids),
    )
    return {r["event_id"]: r["payload_hash_b64u"] for r in rows}


async def _upsert(
    conn: asyncpg.Connection, rows: Sequence[ProjectionRow], version: int | None
) -> None:
    """Upsert rows, one ``executemany`` per table and column set; control-plane
    rows are stamped with ``version`` (the commit's control version)."""
    groups: dict[tuple[str, str, tuple[str, ...]], list[ProjectionRow]] = {}
    for row in rows:
        groups.setdefault((row.table, row.key_column, tuple(row.values)), []).append(row)
    for (table, key_column, columns), members in groups.items():
        records = [tuple(m.values.values()) for m in members]
        if table in _VERSIONED_TABLES:
            if version is None:
                raise ValueError(f"rows of {table} need the control version of their commit")
            columns = (*columns, CONTROL_VERSION_COLUMN)
            records = [(*record, version) for record in records]
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key_column)
        if table in INSERT_ONLY_TABLES:
            updates = ""
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
            f" ON CONFLICT ({key_column}) DO " + (f"UPDATE SET {updates}" if updates else "NOTHING")
        )
        await conn.executemany(sql, records)


async def commit_batch(conn: asyncpg.Connection, commit: BatchCommit) -> int | None:
    """Write a poll's effects and the new positions of its partitions atomically.

    Returns the new control version when the batch changed control-plane
    projections, else ``None``.

    With ``commit.copies_tracked`` false, the batch's outcomes count as copied to
    the verified and quarantine topics (``forwarded_offset``, ADR 0008).

    Raises :class:`StaleBatchError` (and writes nothing) when a stored position
    is not the batch's ``expected_next_offset`` (``None``: no position yet).
    """
    group, topic = commit.group, commit.topic
    batches, projections = commit.batches, commit.projections
    partitions = [b.partition for b in batches]
    async with conn.transaction():
        stored = {
            r["kafka_partition"]: r["next_offset"]
            for r in await conn.fetch(
                "SELECT kafka_partition, next_offset FROM consumer_positions"
                " WHERE consumer_group = $1 AND topic = $2 AND kafka_partition = ANY($3::int[])"
                " FOR UPDATE",
                group,
                topic,
                partitions,
            )
        }
        for batch in batches:
            if stored.get(batch.partition) != batch.expected_next_offset:
                raise StaleBatchError(
                    f"partition {batch.partition}: stored position {stored.get(batch.partition)},"
                    f" batch expected {batch.expected_next_offset}"
                )
        event_records = [(*e, topic, b.partition) for b in batches for e in b.events]
        if event_records:
            await conn.copy_records_to_table("events", columns=EVENT_COLUMNS, records=event_records)
        quarantine_records = [
            (
                q.reason_code,
                q.detail,
                q.raw,
                len(q.raw),
                q.event_id,
                q.signer_did,
                topic,
                b.partition,
                q.kafka_offset,
            )
            for b in batches
            for q in b.quarantined
        ]
        if quarantine_records:
            await conn.copy_records_to_table(
                "quarantine", columns=_QUARANTINE_COLUMNS, records=quarantine_records
            )
        version = None
        if any(row.table in _VERSIONED_TABLES for row in projections):
            # first: the row lock orders control commits, and the rows carry the version
            version = await bump_control_version(conn)
        if projections:
            if version is not None:
                await _move_digests(conn, projections)
            await _upsert(conn, projections, version)
        await conn.executemany(
            "INSERT INTO consumer_positions (consumer_group, topic, kafka_partition, next_offset,"
            " ledger_seq, chain_hash, forwarded_offset) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE SET"
            " next_offset = EXCLUDED.next_offset, ledger_seq = EXCLUDED.ledger_seq,"
            " chain_hash = EXCLUDED.chain_hash, updated_at = now()"
            + ("" if commit.copies_tracked else ", forwarded_offset = EXCLUDED.next_offset"),
            [
                (
                    group,
                    topic,
                    b.partition,
                    b.new_position.next_offset,
                    b.new_position.ledger_seq,
                    b.new_position.chain_hash,
                    b.first_offset if commit.copies_tracked else b.new_position.next_offset,
                )
                for b in batches
            ],
        )
        return version


class PostgresLedgerStore:
    """:class:`~storage.protocol.LedgerStore` on an asyncpg pool (codecs set by
    :func:`init_connection`); each call runs on one connection of the pool."""

    #: events committed between two checks that partitions are cut ahead
    #: (far below the headroom claw_ensure_event_partitions keeps: 2 x 1M positions)
    ENSURE_EVERY = 10_000
    #: commits retried after cutting partitions when an insert found none for its position
    MISSING_PARTITION_RETRIES = 3

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._since_ensure: int | None = None

    @classmethod
    async def open(
        cls, database_url: str, *, min_size: int = 1, max_size: int = 2
    ) -> PostgresLedgerStore:
        """A store on a new pool; :meth:`close` closes it."""
        # nothing the store runs changes a session (no SET, LISTEN, session lock or
        # cursor outside a transaction): the default reset was one more round trip
        # after every transaction, three per batch
        pool = await asyncpg.create_pool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            reset=keep_session,
        )
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def other_groups(self, group: str, topic: str) -> list[str]:
        async with self._pool.acquire() as conn:
            return await other_groups(conn, group, topic)

    async def load_positions(self, group: str, topic: str) -> dict[int, PartitionPosition]:
        async with self._pool.acquire() as conn:
            return await load_positions(conn, group, topic)

    async def control_version(self) -> int:
        async with self._pool.acquire() as conn:
            return await control_version(conn)

    async def load_state_snapshot(
        self, trust_root: str | None, *, since: int | None = None, into: LedgerState | None = None
    ) -> tuple[int, LedgerState]:
        async with self._pool.acquire() as conn:
            return await load_state_snapshot(conn, trust_root, since=since, into=into)

    async def load_state_with_digests(
        self, trust_root: str | None
    ) -> tuple[int, LedgerState, dict[str, int | None]]:
        async with self._pool.acquire() as conn:
            return await load_state_with_digests(conn, trust_root)

    async def open_control_state(
        self, trust_root: str | None, *, whole: Collection[str], stream: bool = True
    ) -> ControlStart:
        from storage import control_cache_sql

        async with self._pool.acquire() as conn:
            return await control_cache_sql.open_control_state(
                conn, trust_root, whole=whole, stream=stream
            )

    async def read_control(self, query: ControlQuery) -> ControlRead:
        from storage import control_cache_sql

        async with self._pool.acquire() as conn:
            return await control_cache_sql.read_control(conn, query)

    async def seal_control_digests(self, version: int, digests: Mapping[str, int]) -> bool:
        async with self._pool.acquire() as conn:
            return await seal_control_digests(conn, version, digests)

    async def existing_payload_hashes(self, event_ids: Sequence[str]) -> dict[str, str]:
        if not event_ids:
            return {}
        async with self._pool.acquire() as conn:
            return await existing_payload_hashes(conn, event_ids)

    async def commit_batch(self, commit: BatchCommit) -> int | None:
        async with self._pool.acquire() as conn:
            if self._since_ensure is None or self._since_ensure >= self.ENSURE_EVERY:
                # outside the commit's transaction: cutting a partition takes a lock on events
                await ensure_partitions(conn)
                self._since_ensure = 0
            events = sum(len(b.events) for b in commit.batches)
            for attempt in range(self.MISSING_PARTITION_RETRIES + 1):
                try:
                    version = await commit_batch(conn, commit)
                    break
                except asyncpg.UniqueViolationError as exc:
                    # another worker recorded one of these event ids (or offsets) first
                    raise StaleBatchError(f"{exc.__class__.__name__}: {exc}") from exc
                except asyncpg.CheckViolationError as exc:
                    if not is_missing_partition(exc) or attempt == self.MISSING_PARTITION_RETRIES:
                        raise
                    # ingest outran the partitions cut ahead (a batch larger than the
                    # headroom, or other processors): cut room for this batch and retry
                    await ensure_partitions(conn, need=2 * events)
            self._since_ensure = (self._since_ensure or 0) + events
            return version

    async def record_forwarded(
        self,
        group: str,
        topic: str,
        marks: Mapping[int, int],
        *,
        since: Mapping[int, int] | None = None,
    ) -> None:
        async with self._pool.acquire() as conn:
            await record_forwarded(conn, group, topic, marks, since)

    async def heartbeat(
        self, worker_id: str, group: str, version: int, timings: CommitTimings = NO_COMMITS
    ) -> None:
        async with self._pool.acquire() as conn:
            await write_heartbeat(conn, worker_id, group, version, timings)

    async def unforwarded_outcomes(
        self, group: str, topic: str, partition: int
    ) -> tuple[int, list[Outcome]]:
        async with self._pool.acquire() as conn:
            return await unforwarded_outcomes(conn, group, topic, partition)

    async def trust_root(self) -> str | None:
        async with self._pool.acquire() as conn:
            return await trust_root(conn)

    async def set_trust_root(self, did: str) -> None:
        async with self._pool.acquire() as conn:
            await set_trust_root(conn, did)
