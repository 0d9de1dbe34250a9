"""The ledger in Postgres (asyncpg): :class:`PostgresLedgerStore` and its SQL.

The control plane's SQL (version, trust root, state, digests) is
:mod:`storage.control_plane_sql`; its names are re-exported here, where
``init``, the authorize store and the tests have always found them.

Exactly-once: the effects of a batch (ledger rows, quarantine rows,
projection rows) and the consumer position of its partition are written in one
transaction, guarded by the stored position, so a re-delivered batch is a
no-op and a crash mid-batch leaves nothing half-written.

The module functions take a connection (``init`` and tests use them directly);
the store runs each on a connection of its pool.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any

import asyncpg

from ledger.batch import EventRow, Outcome, PartitionPosition
from ledger.errors import StaleBatchError
from ledger.plan_reads import written_keys
from ledger.state import LedgerState, ProjectionRow
from storage import LOGIN_REFUSED, keep_session, login_refused, quiet_pool_reconnects
from storage.control_plane_sql import (
    CONTROL_CHANNEL,
    CONTROL_TABLES,
    CONTROL_VERSION_COLUMN,
    VERSIONED_TABLES,
    bump_control_version,
    control_digests,
    control_row,
    control_version,
    load_state,
    load_state_snapshot,
    load_state_with_digests,
    move_digests,
    refuse_changed_rows,
    seal_control_digests,
    set_trust_root,
    trust_root,
)
from storage.partitions import ensure_partitions, is_missing_partition
from storage.protocol import (
    INSERT_ONLY_TABLES,
    NO_COMMITS,
    BatchCommit,
    CommitTimings,
    ControlQuery,
    ControlRead,
    ControlStart,
    HeldControlOrder,
    OffsetMarks,
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
    marks: OffsetMarks,
    since: OffsetMarks | None = None,
) -> None:
    """Record that every outcome below ``marks[partition]`` is on its topic (with
    ``since``: only where the recorded mark has reached ``since[partition]``)."""
    partitions = sorted(marks)
    # one statement, not an executemany: a pipeline of statements cut off between
    # its messages (a cancelled rebalance callback) could leave the pooled session
    # inside a transaction the driver does not know of. The rows are locked in
    # partition order, the order commit_batch locks them in.
    await conn.execute(
        "WITH wanted AS MATERIALIZED ("
        " SELECT c.kafka_partition, m.mark FROM consumer_positions c"
        " JOIN unnest($3::integer[], $4::bigint[], $5::bigint[])"
        " AS m (kafka_partition, mark, since) ON m.kafka_partition = c.kafka_partition"
        " WHERE c.consumer_group = $1 AND c.topic = $2"
        " AND c.forwarded_offset < m.mark AND c.forwarded_offset >= m.since"
        " ORDER BY c.kafka_partition FOR UPDATE OF c)"
        " UPDATE consumer_positions p SET forwarded_offset = w.mark FROM wanted w"
        " WHERE p.consumer_group = $1 AND p.topic = $2 AND p.kafka_partition = w.kafka_partition",
        group,
        topic,
        partitions,
        [marks[p] for p in partitions],
        [0 if since is None else since[p] for p in partitions],
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


async def other_groups(conn: asyncpg.Connection, group: str, topic: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT consumer_group FROM consumer_positions"
        " WHERE topic = $1 AND consumer_group <> $2",
        topic,
        group,
    )
    return [r["consumer_group"] for r in rows]


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
        if table in VERSIONED_TABLES:
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


async def _take_control_order(conn: asyncpg.Connection, commit: BatchCommit) -> int | None:
    """Inside the commit, before its events get their ledger positions: take the
    control order lock and check the plan's rows (ADR 0029); returns the new
    control version when the batch writes control rows, else ``None``.

    A batch that writes control rows bumps the version (the row lock, held to
    commit, orders control commits); one that only reads them takes the same
    row ``FOR SHARE``, so no control commit lands between its check and its
    commit. Either way the events are inserted under the lock, so a control
    commit's positions are above those of every batch committed before it and
    below those after: ``position`` order is the order the state changed in,
    which is what a replay of the ledger decides in. When a commit came in
    between the plan (``control_base``) and now, the rows the plan read or
    writes are checked (:func:`refuse_changed_rows`); a version one above the
    base is this batch's own bump, and nothing is checked.
    """
    base = commit.control_base
    writes = written_keys(commit.projections, VERSIONED_TABLES)
    version: int | None = None
    if writes:
        version = await bump_control_version(conn)
        before = version - 1
    elif base is None:
        return None  # a tool's rows, planned on no control state: nothing to order
    else:
        before = await conn.fetchval("SELECT version FROM control_state WHERE id = 1 FOR SHARE")
    if base is not None and before != base:
        await refuse_changed_rows(conn, commit.control_reads.with_keys(writes), base)
    return version


async def commit_batch(conn: asyncpg.Connection, commit: BatchCommit) -> int | None:
    """Write a poll's effects and the new positions of its partitions atomically.

    Returns the new control version when the batch changed control-plane
    projections, else ``None``.

    With ``commit.copies_tracked`` false, the batch's outcomes count as copied to
    the verified and quarantine topics (``forwarded_offset``, ADR 0008).

    Raises :class:`StaleBatchError` (and writes nothing) when a stored position
    is not the batch's ``expected_next_offset`` (``None``: no position yet), or
    a control row the plan read or writes changed after ``commit.control_base``
    (:func:`_take_control_order`).
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
                # locked in partition order, as record_forwarded updates them: the two
                # run side by side (ADR 0008), and in opposite orders they deadlock
                " ORDER BY kafka_partition FOR UPDATE",
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
        version = await _take_control_order(conn, commit)
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
        if projections:
            if version is not None:
                await move_digests(conn, projections)
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
        quiet_pool_reconnects()
        try:
            pool = await asyncpg.create_pool(
                database_url,
                min_size=min_size,
                max_size=max_size,
                init=init_connection,
                reset=keep_session,
            )
        except LOGIN_REFUSED as exc:  # an outage is the caller's to ride out; this is not
            raise login_refused(database_url, exc) from exc
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

    @contextlib.asynccontextmanager
    async def hold_control_order(self) -> AsyncIterator[HeldControlOrder]:
        async with self._pool.acquire() as conn:
            # outside the lock: cutting a partition takes a lock on events
            await ensure_partitions(conn)
            self._since_ensure = 0
            async with conn.transaction():
                # only the row every commit bumps or shares; the positions come in the
                # commit. Taking them here too would keep the forwarding of this
                # processor's last batch (record_forwarded) waiting on a pool
                # connection the plan's reads need. Another commit waiting here holds
                # positions of its own partitions only, never of these
                version = await conn.fetchval(
                    "SELECT version FROM control_state WHERE id = 1 FOR UPDATE"
                )

                async def commit(held: BatchCommit) -> int | None:
                    try:
                        return await commit_batch(conn, held)  # a savepoint in the hold
                    except asyncpg.UniqueViolationError as exc:
                        raise StaleBatchError(f"{exc.__class__.__name__}: {exc}") from exc

                yield HeldControlOrder(int(version), commit)

    async def record_forwarded(
        self, group: str, topic: str, marks: OffsetMarks, *, since: OffsetMarks | None = None
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
