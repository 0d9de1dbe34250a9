"""The transparency log in Postgres: signed checkpoints and the proofs against them.

Tables of ``migrations/0010_transparency_log.sql``: ``tlog_leaves`` (log index
-> event and its leaf hash, the level-0 nodes), ``tlog_nodes`` (complete
subtrees above the leaves, ``(level, idx) -> hash``) and ``tlog_checkpoints``.
A proof is planned by :mod:`ledger.merkle`, its O(log n) nodes are read in
ONE query (:func:`fetch_nodes`) and folded; no event is read again except the
one whose leaf is proven.

Every function takes an asyncpg connection or pool (anything with ``fetch``
and ``fetchrow``). What the checkpointer writes is in :mod:`storage.tlog_writer`.
"""

from __future__ import annotations

import binascii
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from ledger import merkle
from ledger.encoding import CANONICAL_UUID_RE
from ledger.errors import LedgerError
from ledger.gc_pause import collector_paused
from ledger.instants import format_instant, respelled
from ledger.tlog import CONTROL_CHAIN_BASE, EventLeaf

__all__ = [
    "CHECKPOINT_COLUMNS",
    "ConsistencyProof",
    "InclusionProof",
    "LogEntryNotFound",
    "Queryable",
    "StoredCheckpoint",
    "StoredNodes",
    "checkpoint_at",
    "checkpoints_after",
    "consistency_hashes",
    "consistency_proof_between",
    "fetch_nodes",
    "inclusion_proof_for_event",
    "inclusion_proofs_for_events",
    "latest_checkpoint",
    "latest_checkpoint_time",
    "leaf_at",
    "leaf_chain_sql",
]


class Queryable(Protocol):
    """An asyncpg ``Connection`` or ``Pool``."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...


class LogEntryNotFound(LedgerError):
    """The event, leaf or checkpoint asked for is not in the log (yet)."""


CHECKPOINT_COLUMNS = (
    "tree_size, origin, root_hash, note, signer_did, event_id::text AS event_id,"
    " occurred_at, created_at"
)


def b64(data: bytes) -> str:
    """Standard base64 with padding: the spelling of hashes in checkpoints and proof files."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


@dataclass(frozen=True)
class StoredCheckpoint:
    """A row of ``tlog_checkpoints``: a checkpoint the ledger signed."""

    tree_size: int
    origin: str
    root_hash: bytes
    #: the C2SP signed note, exactly as signed
    note: str
    signer_did: str
    #: the ``checkpoint.signed`` event that publishes it
    event_id: str
    occurred_at: str
    created_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredCheckpoint:
        return cls(
            tree_size=int(row["tree_size"]),
            origin=str(row["origin"]),
            root_hash=bytes(row["root_hash"]),
            note=str(row["note"]),
            signer_did=str(row["signer_did"]),
            event_id=str(row["event_id"]),
            occurred_at=str(row["occurred_at"]),
            created_at=row.get("created_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root_hash_b64": b64(self.root_hash),
            "signer_did": self.signer_did,
            "event_id": self.event_id,
            "occurred_at": respelled(self.occurred_at),
            "created_at": format_instant(self.created_at) if self.created_at else None,
            "note": self.note,
        }


@dataclass(frozen=True)
class InclusionProof:
    """Leaf ``log_index`` (the event ``event_id``) is in the tree of ``checkpoint``."""

    event_id: str
    log_index: int
    leaf: EventLeaf
    #: the 93 leaf bytes (ledger.tlog); the leaf hash is SHA-256(0x00 || leaf_data)
    leaf_data: bytes
    proof: list[bytes]
    checkpoint: StoredCheckpoint

    def proof_file(self) -> dict[str, Any]:
        """The proof file of docs/transparency.md §8 (``claw-ledger verify`` reads it)."""
        return {
            "checkpoint": self.checkpoint.note,
            "inclusion": [
                {
                    "log_index": self.log_index,
                    "leaf": {
                        "partition": self.leaf.partition,
                        "ledger_seq": self.leaf.ledger_seq,
                        "event_id": self.leaf.event_id,
                        "envelope_sha256": self.leaf.envelope_sha256,
                        "chain_hash": self.leaf.chain_hash,
                    },
                    "proof_b64": [b64(h) for h in self.proof],
                }
            ],
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``new`` extends the tree of ``old``."""

    old: StoredCheckpoint
    new: StoredCheckpoint
    proof: list[bytes]

    def proof_file(self) -> dict[str, Any]:
        return {
            "checkpoint": self.new.note,
            "consistency": {
                "old_checkpoint": self.old.note,
                "proof_b64": [b64(h) for h in self.proof],
            },
        }


class StoredNodes:
    """A :class:`ledger.merkle.NodeReader` over nodes fetched for one proof."""

    def __init__(self, nodes: Mapping[merkle.NodeId, bytes]) -> None:
        self._nodes = nodes

    def get(self, level: int, index: int) -> bytes:
        return self._nodes[(level, index)]

    def get_many(self, ids: Sequence[merkle.NodeId]) -> list[bytes]:
        return [self._nodes[node] for node in ids]


async def fetch_nodes(db: Queryable, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
    """The hashes of ``ids``, in one query. A missing node is a damaged log (LedgerError)."""
    if not ids:
        return {}
    inner = [(level, index) for level, index in ids if level]
    rows = await db.fetch(
        "SELECT 0 AS level, log_index AS idx, leaf_hash AS hash FROM tlog_leaves"
        " WHERE log_index = ANY($1::bigint[])"
        " UNION ALL SELECT n.level, n.idx, n.hash FROM tlog_nodes n"
        " JOIN unnest($2::smallint[], $3::bigint[]) AS want(level, idx)"
        " ON n.level = want.level AND n.idx = want.idx",
        [index for level, index in ids if not level],
        [level for level, _ in inner],
        [index for _, index in inner],
    )
    nodes = {(int(r["level"]), int(r["idx"])): bytes(r["hash"]) for r in rows}
    missing = [node for node in ids if node not in nodes]
    if missing:
        raise LedgerError(
            f"the transparency log misses the nodes {missing[:5]} (level, index)",
            hint="the tlog_nodes table was changed: run `claw-ledger audit`",
        )
    return nodes


async def latest_checkpoint(db: Queryable) -> StoredCheckpoint | None:
    """The newest checkpoint the ledger signed, or ``None`` before the first round."""
    row = await db.fetchrow(
        f"SELECT {CHECKPOINT_COLUMNS} FROM tlog_checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    return StoredCheckpoint.from_row(row) if row else None


async def latest_checkpoint_time(db: Queryable) -> datetime | None:
    """When the newest checkpoint was stored (its age: ``status``, ``/metrics``)."""
    row = await db.fetchrow("SELECT max(created_at) AS created_at FROM tlog_checkpoints")
    return None if row is None else cast("datetime | None", row["created_at"])


async def checkpoint_at(db: Queryable, tree_size: int) -> StoredCheckpoint | None:
    row = await db.fetchrow(
        f"SELECT {CHECKPOINT_COLUMNS} FROM tlog_checkpoints WHERE tree_size = $1", tree_size
    )
    return StoredCheckpoint.from_row(row) if row else None


async def checkpoints_after(db: Queryable, tree_size: int, limit: int) -> list[StoredCheckpoint]:
    """Checkpoints larger than ``tree_size``, oldest first."""
    rows = await db.fetch(
        f"SELECT {CHECKPOINT_COLUMNS} FROM tlog_checkpoints WHERE tree_size > $1"
        " ORDER BY tree_size LIMIT $2",
        tree_size,
        limit,
    )
    return [StoredCheckpoint.from_row(r) for r in rows]


async def _require_checkpoint(db: Queryable, tree_size: int | None) -> StoredCheckpoint:
    checkpoint = (
        await latest_checkpoint(db) if tree_size is None else await checkpoint_at(db, tree_size)
    )
    if checkpoint is not None:
        return checkpoint
    if tree_size is None:
        raise LogEntryNotFound(
            "the ledger has signed no checkpoint yet",
            hint="run the checkpointer: `claw-ledger checkpointer start --key LEDGER_KEY`",
        )
    latest = await latest_checkpoint(db)
    raise LogEntryNotFound(
        f"no checkpoint of tree size {tree_size}"
        + (f" (the latest is {latest.tree_size})" if latest else ""),
        hint="`claw-ledger checkpoint list` shows the sizes that were signed",
    )


def leaf_chain_sql(alias: str = "") -> str:
    """SQL for :func:`ledger.tlog.chain_number` of an ``events`` row (``alias``: its
    table alias with the dot). The control lane's topic is ``<prefix>.control``
    (:class:`consumers.config.ProcessorConfig` refuses any other name)."""
    return (
        f"(CASE WHEN {alias}kafka_topic LIKE '%.control' THEN {CONTROL_CHAIN_BASE} ELSE 0 END"
        f" + {alias}kafka_partition)"
    )


_LEAF_SELECT = (
    "SELECT l.log_index, l.event_id::text AS leaf_event_id, l.kafka_partition AS leaf_partition,"
    " l.ledger_seq AS leaf_seq, " + leaf_chain_sql("e.") + " AS kafka_partition,"
    " e.ledger_seq, e.event_id::text AS event_id,"
    " e.envelope_sha256, e.chain_hash, l.leaf_hash AS stored_leaf_hash"
    " FROM tlog_leaves l JOIN events e ON e.position = l.position"
)


def _leaf_of(row: Mapping[str, Any]) -> EventLeaf:
    """The leaf of the event row; the leaf row must name that same event."""
    if (row["leaf_event_id"], row["leaf_partition"], row["leaf_seq"]) != (
        row["event_id"],
        row["kafka_partition"],
        row["ledger_seq"],
    ):
        raise LedgerError(
            f"log index {row['log_index']} names event {row['leaf_event_id']} but points"
            f" at event {row['event_id']}",
            hint="the tlog_leaves table was changed: run `claw-ledger audit`",
        )
    return EventLeaf.from_row(row)


async def leaf_at(db: Queryable, log_index: int) -> EventLeaf | None:
    row = await db.fetchrow(f"{_LEAF_SELECT} WHERE l.log_index = $1", log_index)
    return _leaf_of(row) if row else None


def _event_uuid(event_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(event_id)
    except ValueError:
        raise LogEntryNotFound(f"not an event id: {event_id!r}") from None


_CHECKPOINT_OF = {
    # one row at most either way; two statements so each has the plan of its own
    # lookup (a generic plan of "latest, or this size" could scan every checkpoint)
    True: "SELECT * FROM tlog_checkpoints ORDER BY tree_size DESC LIMIT 1",
    False: "SELECT * FROM tlog_checkpoints WHERE tree_size = $2",
}


def _leaf_and_checkpoint_sql(latest: bool) -> str:
    """The event's leaf row and the checkpoint to prove against, in one round trip
    (each side NULL when missing)."""
    columns = ", ".join(
        f"c.{name} AS cp_{name}"
        for name in (
            "tree_size",
            "origin",
            "root_hash",
            "note",
            "signer_did",
            "occurred_at",
            "created_at",
        )
    )
    return (
        f"SELECT x.*, {columns}, c.event_id::text AS cp_event_id FROM (SELECT 1) AS one"
        f" LEFT JOIN ({_CHECKPOINT_OF[latest]}) AS c ON TRUE"
        # by position through event_keys: the partitioned events table has no
        # event_id index of its own (migration 0017)
        f" LEFT JOIN ({_LEAF_SELECT} WHERE l.position ="
        " (SELECT k.position FROM event_keys k WHERE k.event_id = $1)) AS x ON TRUE"
    )


_LEAF_AND_LATEST = _leaf_and_checkpoint_sql(True)
_LEAF_AND_SIZED = _leaf_and_checkpoint_sql(False)


async def inclusion_proof_for_event(
    db: Queryable, event_id: str, tree_size: int | None = None
) -> InclusionProof:
    """The proof that event ``event_id`` is in the checkpoint of ``tree_size`` (default:
    the latest). Raises :class:`LogEntryNotFound` when the event is not in that tree.

    Two round trips: the leaf with its checkpoint, then the proof's nodes."""
    wanted = _event_uuid(event_id)
    if tree_size is None:
        row = await db.fetchrow(_LEAF_AND_LATEST, wanted)
    else:
        row = await db.fetchrow(_LEAF_AND_SIZED, wanted, tree_size)
    if row is None or row["log_index"] is None:
        # event_keys: the event_id index of the partitioned events (migration 0017); it
        # keeps the position of an archived event, whose row left the table
        committed = await db.fetchrow(
            "SELECT k.position,"
            " EXISTS (SELECT 1 FROM events e WHERE e.position = k.position) AS attached"
            " FROM event_keys k WHERE k.event_id = $1",
            wanted,
        )
        if committed is None:
            raise LogEntryNotFound(f"no event {event_id} on the ledger")
        if not committed["attached"]:
            raise LogEntryNotFound(
                f"event {event_id} is archived (position {committed['position']} was detached"
                " from the ledger table), so its leaf cannot be recomputed here",
                hint="prove it on a copy of the ledger with its archive restored"
                ' (docs/operations.md, "Archiving old events")',
            )
        raise LogEntryNotFound(
            f"event {event_id} is on the ledger but not in the log yet",
            hint="the checkpointer appends it at its next round (`claw-ledger checkpointer"
            " status`); `prove inclusion --wait 30` waits for it",
        )
    leaf = _leaf_of(row)
    log_index = int(row["log_index"])
    if row["cp_tree_size"] is None:
        checkpoint = await _require_checkpoint(db, tree_size)  # raises: none signed
    else:
        checkpoint = StoredCheckpoint.from_row(
            {name[3:]: value for name, value in row.items() if name.startswith("cp_")}
        )
    if log_index >= checkpoint.tree_size:
        raise LogEntryNotFound(
            f"event {event_id} is leaf {log_index}, after the checkpoint of size"
            f" {checkpoint.tree_size}",
            hint="prove it against a later checkpoint",
        )
    elements = merkle.inclusion_plan(log_index, checkpoint.tree_size)
    nodes = await fetch_nodes(db, merkle.plan_ids(elements))
    return InclusionProof(
        row["event_id"], log_index, leaf, leaf.data(), merkle.assemble(elements, nodes), checkpoint
    )


#: event ids per query of :func:`inclusion_proofs_for_events` (bounds one query's arrays)
PROOF_BATCH = 5000


async def inclusion_proofs_for_events(
    db: Queryable, event_ids: Sequence[str], tree_size: int
) -> tuple[dict[str, tuple[int, EventLeaf, list[bytes]]], list[str]]:
    """Proofs of many events against the checkpoint of ``tree_size``: ``({event id:
    (log index, leaf, proof)}, [event ids that tree does not hold])``.

    The same proofs as :func:`inclusion_proof_for_event`, in two queries per
    :data:`PROOF_BATCH` events instead of three per event: the leaves of the whole
    batch (with their stored leaf hashes), then, each once, the nodes their proofs
    need that do not lie over the batch's own leaves; those are hashed from the
    leaf hashes (a run's events sit close together in the log).
    """
    found: dict[str, tuple[int, EventLeaf, list[bytes]]] = {}
    if await checkpoint_at(db, tree_size) is None:
        return found, list(event_ids)
    wanted: dict[str, str] = {}  # the row's spelling (event_id::text) -> the caller's
    for event_id in event_ids:
        try:
            spelled = (
                event_id if CANONICAL_UUID_RE.fullmatch(event_id) else str(uuid.UUID(event_id))
            )
        except ValueError:
            continue
        wanted[spelled] = event_id
    ids = list(wanted)  # asyncpg sends each text as a uuid
    # paused across the queries too: each batch's rows, plans and nodes are freed
    # when it returns, so the collector resumes with only the proofs left to walk
    with collector_paused():
        for start in range(0, len(ids), PROOF_BATCH):
            await _prove_batch(db, ids[start : start + PROOF_BATCH], tree_size, wanted, found)
    return found, [event_id for event_id in event_ids if event_id not in found]


async def _prove_batch(
    db: Queryable,
    ids: list[str],
    tree_size: int,
    wanted: Mapping[str, str],
    found: dict[str, tuple[int, EventLeaf, list[bytes]]],
) -> None:
    """:func:`inclusion_proofs_for_events` for one batch of ids: into ``found``."""
    rows = await db.fetch(
        f"{_LEAF_SELECT} WHERE l.position IN (SELECT k.position FROM event_keys k"
        " WHERE k.event_id = ANY($1::uuid[])) AND l.log_index < $2",
        ids,
        tree_size,
    )
    leaves: list[tuple[str, int, EventLeaf]] = []
    leaf_hashes: dict[int, bytes] = {}
    for row in rows:
        leaf = _leaf_of(row)
        leaf.data()  # a malformed stored leaf fails here, as one proof at a time does
        log_index = int(row["log_index"])
        leaves.append((wanted[row["event_id"]], log_index, leaf))
        leaf_hashes[log_index] = bytes(row["stored_leaf_hash"])
    batch = merkle.InclusionBatch(leaf_hashes, tree_size)
    # a run's paths mostly climb over the run's own leaves: those nodes are hashed
    # from the stored leaf hashes, and only the others are read
    nodes = merkle.covered_nodes(leaf_hashes)
    nodes.update(await fetch_nodes(db, [node for node in batch.nodes() if node not in nodes]))
    paths = batch.paths(nodes)
    for event_id, log_index, leaf in leaves:
        found[event_id] = (log_index, leaf, paths[log_index])


async def consistency_hashes(db: Queryable, old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof from ``old_size`` to ``new_size``, from the stored nodes alone
    (a monitor checks it against the old root it remembers, not a stored row)."""
    elements = merkle.consistency_plan(old_size, new_size)
    return merkle.assemble(elements, await fetch_nodes(db, merkle.plan_ids(elements)))


async def consistency_proof_between(
    db: Queryable, old_size: int, new_size: int
) -> ConsistencyProof:
    """The proof that the checkpoint of ``new_size`` extends the one of ``old_size``."""
    if old_size > new_size:
        raise LogEntryNotFound(f"the old size {old_size} is larger than the new {new_size}")
    old = await _require_checkpoint(db, old_size)
    new = await _require_checkpoint(db, new_size)
    return ConsistencyProof(old, new, await consistency_hashes(db, old_size, new_size))
