"""The checkpointer (ADR 0017): the transparency log's single sequencer.

It reads newly committed events (per partition, by ``ledger_seq``), appends
them to the RFC 9162 tree in the order ADR 0011 defines, and every N events
or T seconds writes a round (leaves, complete-subtree nodes, the checkpoint
signed with the ledger's key) in one transaction, then publishes the
checkpoint as a ``checkpoint.signed`` event. One per ledger: it holds a
Postgres advisory lock for as long as it runs.

Crash safety: the tree in Postgres is always the last checkpoint's. A restart
reads the right edge back from the stored nodes and continues after the last
stored ``ledger_seq`` of each partition, so no leaf is lost or repeated; a
checkpoint committed but not published is published again with the same
event id and payload (a duplicate to the processor if it got there already).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto import KeyPair
from ledger.envelope import format_timestamp
from ledger.errors import ConfigError, ServiceError
from ledger.events import build_event, sign_event
from ledger.merkle import CompactRange
from ledger.roles import Role
from ledger.types.checkpoints import ORIGIN_PATTERN, CheckpointSigned, checkpoint_stream
from storage import DATABASE_UNAVAILABLE, connect
from storage.roles import database_name
from storage.tlog_store import StoredCheckpoint, b64
from storage.tlog_writer import (
    AppendedRound,
    LogState,
    Waiting,
    append_committed_round,
    load_log_state,
    substantive_waiting,
    try_lock,
    unpublished_checkpoints,
    waiting_partitions,
)

if TYPE_CHECKING:
    from producers.sdk import LedgerProducer

__all__ = [
    "EXIT_LOCKED",
    "CheckpointerConfig",
    "CheckpointerLocked",
    "default_origin",
    "require_ledger_key",
    "run_checkpointer",
]

log = logging.getLogger("claw_ledger.checkpointer")

#: exit code of ``checkpointer run`` when another checkpointer holds the ledger's lock
EXIT_LOCKED = 3
_CHECKPOINT_TYPE = "checkpoint.signed"
#: a reopen that fails with these waits and tries again
_STILL_DOWN: tuple[type[BaseException], ...] = (ServiceError, *DATABASE_UNAVAILABLE)


class CheckpointerLocked(ServiceError):
    """Another checkpointer already runs for this ledger."""


@dataclass(frozen=True)
class CheckpointerConfig:
    writer_url: str
    kafka_bootstrap: str
    ingress_topic: str
    key: KeyPair
    #: the log's name; ``None``: the one of the stored checkpoints, else :func:`default_origin`
    origin: str | None
    every_events: int = 10_000
    every_seconds: float = 1.0
    poll_seconds: float = 0.1
    #: at most this many leaves of a partition appended in one round
    max_per_round: int = 100_000
    #: the control lane's topic; empty: ``<prefix>.control`` of the ingress topic
    control_topic: str = ""

    @property
    def lane_topic(self) -> str:
        """The control lane's topic, whose events are leaves too."""
        return self.control_topic or self.ingress_topic.removesuffix(".ingress") + ".control"


def default_origin(database: str) -> str:
    """The origin of a ledger that was given none: ``claw-ledger.local/<database>``."""
    return f"claw-ledger.local/{database}"


class _Checkpointer:
    def __init__(self, config: CheckpointerConfig, conn: asyncpg.Connection, origin: str) -> None:
        self.config = config
        self.conn = conn
        self.origin = origin
        self.signer = NoteSigner(origin, config.key)
        self.state = LogState(CompactRange(), None)
        self.waiting: list[Waiting] = []
        self.unpublished: list[StoredCheckpoint] = []
        self.last_log = 0.0

    async def resume(self) -> None:
        self.state = await load_log_state(self.conn)
        self.waiting = []
        self.unpublished = await unpublished_checkpoints(self.conn, 100)

    @property
    def waiting_events(self) -> int:
        return sum(w.head - w.done for w in self.waiting)

    async def poll(self) -> None:
        # both lanes' events are leaves, each chain under its own number (ADR 0024)
        self.waiting = await waiting_partitions(
            self.conn, (self.config.ingress_topic, self.config.lane_topic), self.state.included
        )

    async def due(self, since_last_round: float) -> bool:
        if self.waiting_events >= self.config.every_events:
            return True
        if since_last_round < self.config.every_seconds or not self.waiting:
            return False
        # the log's own checkpoint events alone do not call for a checkpoint:
        # otherwise each one would cause the next, forever
        return await substantive_waiting(self.conn, self.waiting, _CHECKPOINT_TYPE)

    def _seal(
        self, edge: CompactRange, hashes: list[bytes]
    ) -> tuple[list[tuple[int, int, bytes]], StoredCheckpoint]:
        """Grow ``edge`` by the new leaves: the nodes they complete and the signed
        checkpoint of the grown tree."""
        nodes = edge.extend(hashes)
        checkpoint = Checkpoint(self.origin, edge.size, edge.root())
        return nodes, StoredCheckpoint(
            tree_size=edge.size,
            origin=self.origin,
            root_hash=checkpoint.root_hash,
            note=sign_checkpoint(checkpoint, [self.signer]).decode("utf-8"),
            signer_did=self.config.key.did,
            event_id=str(uuid.uuid4()),
            occurred_at=format_timestamp(),
        )

    async def round(self) -> AppendedRound | None:
        """Append the committed events and sign, store and publish the new checkpoint;
        ``None`` when nothing was there to append."""
        edge = CompactRange(self.state.edge.size, list(self.state.edge.hashes))
        appended = await append_committed_round(
            self.conn,
            self.waiting,
            edge.size,
            self.config.max_per_round,
            lambda hashes: self._seal(edge, hashes),
        )
        self.waiting = []
        if appended is None:
            return None
        self.state.edge = edge
        self.state.checkpoint = appended.checkpoint
        self.state.included.update(appended.included)
        self.unpublished.append(appended.checkpoint)
        return appended

    def report(self, stored: StoredCheckpoint, added: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_log >= 60:
            self.last_log = now
            log.info(
                "checkpoint %s size %d root %s (+%d leaves)",
                stored.origin,
                stored.tree_size,
                b64(stored.root_hash),
                added,
            )


def _checkpoint_event(key: KeyPair, stored: StoredCheckpoint) -> tuple[str, bytes]:
    """The ``checkpoint.signed`` envelope of ``stored``: the same bytes every time it is built
    (the id and time are stored, Ed25519 is deterministic)."""
    body = CheckpointSigned(
        origin=stored.origin,
        tree_size=stored.tree_size,
        root_hash_b64=b64(stored.root_hash),
        note=stored.note,
    )
    event = build_event(
        _CHECKPOINT_TYPE,
        checkpoint_stream(stored.origin),
        body,
        key,
        event_id=stored.event_id,
        occurred_at=stored.occurred_at,
    )
    return event.stream, sign_event(event, key, issued_at=stored.occurred_at).to_bytes()


async def require_ledger_key(conn: asyncpg.Connection, key: KeyPair) -> None:
    """Refuse (ConfigError) a key that the ledger would not accept as the signer of a
    checkpoint or a sealed bundle: unregistered, revoked, or without the ledger role."""
    row = await conn.fetchrow("SELECT name, roles, revoked FROM keys WHERE did = $1", key.did)
    hint = (
        f"register it: `claw-ledger keys register {key.name or 'NAME'} --role ledger --key admin`"
    )
    if row is None:
        raise ConfigError(f"the key {key.did} is not registered on this ledger", hint=hint)
    roles = row["roles"]
    if isinstance(roles, str):
        roles = json.loads(roles)
    if row["revoked"]:
        raise ConfigError(f"the key {key.did} was revoked", hint=hint)
    if Role.LEDGER.value not in roles:
        raise ConfigError(
            f"the key {key.did} ({row['name']}) does not hold the ledger role", hint=hint
        )


def _check_origin(origin: str) -> str:
    if not re.fullmatch(ORIGIN_PATTERN, origin):
        raise ConfigError(
            f"not a log origin: {origin!r}",
            hint="one line of at most 300 characters, no whitespace and no '+',"
            " e.g. ledger.example.com/claw",
        )
    return origin


async def _open(config: CheckpointerConfig) -> _Checkpointer:
    conn = await connect(config.writer_url)
    try:
        if not await try_lock(conn):
            raise CheckpointerLocked(
                "another checkpointer is running for this ledger (it holds the lock)",
                hint="only one may run; stop the other (`claw-ledger checkpointer stop`)",
            )
        await require_ledger_key(conn, config.key)
        state = await load_log_state(conn)
        stored_origin = state.checkpoint.origin if state.checkpoint else None
        fallback = default_origin(database_name(config.writer_url))
        origin = _check_origin(config.origin or stored_origin or fallback)
        if stored_origin is not None and origin != stored_origin:
            raise ConfigError(
                f"this ledger's log is {stored_origin!r}, not {origin!r}",
                hint="a log's origin never changes; leave --origin out",
            )
        checkpointer = _Checkpointer(config, conn, origin)
        await checkpointer.resume()
        return checkpointer
    except BaseException:
        await conn.close()
        raise


class _NotPublished(ServiceError):
    """A checkpoint is signed and stored, but Kafka did not take its event (yet)."""


async def _publish(checkpointer: _Checkpointer, producer: LedgerProducer) -> None:
    from aiokafka.errors import KafkaError

    while checkpointer.unpublished:
        stored = checkpointer.unpublished[0]
        stream, raw = _checkpoint_event(checkpointer.config.key, stored)
        try:
            await (
                await producer.send_raw(raw, stream, stored.event_id, event_type=_CHECKPOINT_TYPE)
            )
        except (KafkaError, TimeoutError) as exc:
            raise _NotPublished(
                f"the checkpoint of size {stored.tree_size} is signed and stored, but its"
                f" checkpoint.signed event could not be published: {exc}",
                hint="it is published again at the next attempt or start",
            ) from exc
        checkpointer.unpublished.pop(0)


async def run_checkpointer(
    config: CheckpointerConfig, *, once: bool = False, stop: asyncio.Event | None = None
) -> StoredCheckpoint | None:
    """Run until SIGTERM/SIGINT (or ``stop``); with ``once``, one round of what is pending.

    Returns the last checkpoint it signed. Raises :class:`CheckpointerLocked`
    when another checkpointer runs, :class:`ConfigError` when the key may not
    sign for the ledger.
    """
    from producers.sdk import LedgerProducer

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    if not config.every_events >= 1 or not config.every_seconds > 0:
        raise ConfigError("--every-events must be at least 1 and --every-seconds positive")
    checkpointer = await _open(config)
    last: StoredCheckpoint | None = None
    producer = LedgerProducer(config.kafka_bootstrap, config.ingress_topic, linger_ms=0)
    await producer.start()
    delay = 0.5
    try:
        log.info(
            "checkpointer for %s: log size %d, signing as %s",
            checkpointer.origin,
            checkpointer.state.edge.size,
            config.key.did,
        )
        last_round = time.monotonic()
        while not stop.is_set():
            try:
                if checkpointer.unpublished:
                    await _publish(checkpointer, producer)
                await checkpointer.poll()
                if checkpointer.waiting and (
                    once or await checkpointer.due(time.monotonic() - last_round)
                ):
                    appended = await checkpointer.round()
                    if appended is not None:
                        last = appended.checkpoint
                        last_round = time.monotonic()
                        checkpointer.report(last, appended.leaves, force=once)
                        await _publish(checkpointer, producer)
                        delay = 0.5
                        if not once:
                            continue
                if once:
                    break
            except _NotPublished as exc:
                if once:
                    raise
                log.warning("%s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            except DATABASE_UNAVAILABLE as exc:
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                checkpointer = await _reopen(checkpointer, config)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.poll_seconds)
    finally:
        await producer.stop()
        with contextlib.suppress(*DATABASE_UNAVAILABLE):
            await checkpointer.conn.close()
    return last


async def _reopen(old: _Checkpointer, config: CheckpointerConfig) -> _Checkpointer:
    """A new session (the lock went with the old one), resumed from the stored tree."""
    with contextlib.suppress(*DATABASE_UNAVAILABLE):
        await old.conn.close()
    while True:
        try:
            return await _open(config)
        except CheckpointerLocked:
            raise
        except _STILL_DOWN as exc:
            log.warning("database still unavailable (%s)", exc)
            await asyncio.sleep(2.0)
