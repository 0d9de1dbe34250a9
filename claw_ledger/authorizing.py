"""The authorize service: decide before every call, record every decision.

:class:`AuthorizeService` is what ``claw-ledger authorize`` runs once and what
an HTTP server mounts (``start``, ``decide``, ``stop``). It keeps the control
state in memory, follows the ledger (LISTEN on the control channel, and a poll
of the processor heartbeat and control version every ``poll_interval``), asks
:func:`ledger.authorize.decide_call` for each request, uses the nonce in
Postgres for an allow, and publishes every decision as a signed
``call.authorized``/``call.denied`` event in the background: the answer never
waits on Kafka, and :meth:`AuthorizeService.stop` flushes what is queued
(ADR 0015). Each decision is signed as it is made and queued as bytes, so the
signing cost is spread evenly over the answers instead of landing on the
ones that arrive while a whole batch is signed (ADR 0028).

Shadow policies (ADR 0023): the decision judges every active shadow candidate
covering the call beside the real WPC (:attr:`Decision.shadows`); each one that
disagrees with the answer is published as ``call.shadowed`` with the decision,
from the same queue. The answer itself never depends on a shadow.

Deny early, allow late (ADR 0025): with a ``control_topic`` the service also
reads the control lane (:class:`claw_ledger.control_follower.ControlFollower`)
and a validly signed halt or revocation denies from the moment it is read,
before the ledger commits it (``halt_state`` ``seen``, ``seen_event_id``).
Each sync asks the ledger about the events it holds: committed, the committed
state takes over; quarantined, the early effect is lifted (logged, counted, in
:meth:`AuthorizeService.status`). A resume or a grant acts only once committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger.attributes import attributes
from ledger.authorize import (
    AuthorizeSettings,
    CallRequest,
    Decision,
    DecisionView,
    decide_call,
    recorder_refusal,
    replayed,
    unavailable,
    unrecordable,
)
from ledger.control_digest import CONTROL_DIGEST_TABLES, digest_hex, state_digests
from ledger.crypto import KeyPair
from ledger.errors import (
    ControlPlaneTamperedError,
    EventError,
    PublishError,
    ReasonCode,
    ServiceError,
)
from ledger.events import NewEvent
from ledger.seen_controls import SeenControl, SeenControls, resolution
from ledger.shadow import shadowed_body
from ledger.state import LedgerState
from ledger.types.shadows import shadow_event_id

if TYPE_CHECKING:
    from claw_ledger.config import Settings
    from claw_ledger.control_follower import ControlFollower
    from producers.sdk import LedgerProducer, RawEvent
    from storage.authorize_queries import AuthorizeStore

__all__ = ["AuthorizeConfig", "AuthorizeService", "DecisionCounters"]

log = logging.getLogger("claw_ledger.authorize")

DEFAULT_AUTHORIZE_SETTINGS = AuthorizeSettings()

#: decisions sent together, at most
_PUBLISH_BATCH = 500
#: how long the decisions' producer gathers a record batch: they are recorded in
#: the background, and each produce request costs the broker and the processor
#: about as much as the events in it (ADR 0028)
DECISION_LINGER_MS = 50
#: seen control events asked about per sync, oldest first (the lane is decided in order)
_SETTLE_BATCH = 2000


@dataclass(frozen=True)
class AuthorizeConfig:
    """Where the service reads (the writer URL: it inserts nonces) and publishes."""

    database_url: str
    kafka_bootstrap: str
    ingress_topic: str
    settings: AuthorizeSettings = DEFAULT_AUTHORIZE_SETTINGS
    #: how often the heartbeat and control version are read (LISTEN wakes it sooner)
    poll_interval: float = 0.25
    #: decisions waiting for Kafka; when full, an answer waits for room (none is dropped)
    queue_size: int = 10_000
    #: how long :meth:`AuthorizeService.stop` waits for queued decisions to be recorded
    stop_timeout: float = 30.0
    #: the control lane read for deny early (ADR 0025); ``None``: committed state only
    control_topic: str | None = None
    #: how long :meth:`AuthorizeService.start` waits for the control lane to be read
    #: up to its end (not at all once the lane cannot be read): the first answers
    #: then hold every halt already on the lane, committed or not
    control_catch_up: float = 10.0
    #: seen control events held at once (ADR 0025)
    max_seen: int = 100_000

    @classmethod
    def from_settings(cls, resolved: Settings, /, **kw: Any) -> AuthorizeConfig:
        """The ledger the settings name (``kw``: the other fields)."""
        from claw_ledger.config import effective_database_url, effective_kafka_bootstrap
        from claw_ledger.topics import topics_for

        topics = topics_for(resolved)
        return cls(
            database_url=effective_database_url(resolved, role="writer"),
            kafka_bootstrap=effective_kafka_bootstrap(resolved),
            ingress_topic=topics.ingress,
            **({"control_topic": topics.control} | kw),
        )


@dataclass
class DecisionCounters:
    """Decisions answered, recorded on Kafka, and given up on (never silently);
    shadow disagreements recorded with them."""

    made: int = 0
    recorded: int = 0
    failed: int = 0
    shadowed: int = 0

    @property
    def pending(self) -> int:
        return self.made - self.recorded - self.failed

    def to_dict(self) -> dict[str, int]:
        return attributes(self, "made", "recorded", "failed", "pending", "shadowed")


def _merge(state: LedgerState, changed: LedgerState) -> None:
    """Apply rows read since the last version; synchronous, so no decision sees half."""
    state.keys.update(changed.keys)
    for table in ("policies", "tokens", "jobs", "halts", "shadows"):
        getattr(state, table).update(getattr(changed, table))


class AuthorizeService:
    """One authorize process: ``await start()``, ``await decide(request)``, ``await stop()``."""

    def __init__(self, config: AuthorizeConfig, key: KeyPair) -> None:
        self.config = config
        self.key = key
        self.counters = DecisionCounters()
        self._store: AuthorizeStore | None = None
        self._producer: LedgerProducer | None = None
        self._state = LedgerState()
        self._version = -1
        self.seen = SeenControls(config.max_seen)
        self._follower: ControlFollower | None = None
        self._view = DecisionView.of(self._state, None, seen_controls=self.seen).failed(
            "not started"
        )
        self._wake = asyncio.Event()
        #: each item: one decision's signed events (the decision, then its shadows)
        self._queue: asyncio.Queue[list[RawEvent]] = asyncio.Queue(config.queue_size)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def view(self) -> DecisionView:
        """The state decisions read now (for status pages and tests)."""
        return self._view

    async def start(self) -> None:
        """Start publishing and follow the ledger; a database that does not answer
        yet only makes the answers ``LEDGER_UNAVAILABLE`` until it does."""
        from producers.sdk import LedgerProducer

        producer = LedgerProducer(
            self.config.kafka_bootstrap,
            self.config.ingress_topic,
            client_id="claw-ledger-authorize",
            linger_ms=DECISION_LINGER_MS,
        )
        try:
            await producer.start()
        except PublishError as exc:
            raise ServiceError(f"cannot publish decisions: {exc.message}", hint=exc.hint) from exc
        except Exception as exc:
            raise ServiceError(
                f"cannot publish decisions to Kafka at {self.config.kafka_bootstrap}: {exc}",
                hint="start the ledger's services (`claw-ledger up`) or check --kafka",
            ) from exc
        self._producer = producer
        await self._sync()
        self._tasks = [
            asyncio.create_task(self._follow(), name="authorize-follow"),
            asyncio.create_task(self._publish(), name="authorize-publish"),
        ]
        if self.config.control_topic is not None:
            from claw_ledger.control_follower import ControlFollower

            self._follower = ControlFollower(
                self.config.kafka_bootstrap,
                self.config.control_topic,
                self.seen,
                lambda: self._state,
                self._control_positions,
                ready=lambda: self._version >= 0,
            )
            self._tasks.append(asyncio.create_task(self._follower.run(), name="authorize-control"))
            if self.config.control_catch_up > 0 and self._version >= 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._follower.settled.wait(), self.config.control_catch_up
                    )

    async def _control_positions(self) -> dict[int, int]:
        """Where the processors' control lane stands: the follower starts there."""
        assert self.config.control_topic is not None
        if self._store is None:
            return {}  # the beginning: more reading, nothing missed
        try:
            return await self._store.control_positions(self.config.control_topic)
        except ServiceError:
            return {}

    def recorder_refusal(self) -> tuple[ReasonCode, str] | None:
        """Why the ledger, as this service sees it, would refuse the decisions it
        signs (its key unregistered, revoked or without the role), or ``None``
        (also while the state cannot be read: every answer is a deny then)."""
        if not self._view.available:
            return None
        return recorder_refusal(self._view, self.key.did)

    def status(self) -> dict[str, Any]:
        """Decisions, the state's health and the control lane's (for status pages)."""
        view = self._view
        refusal = self.recorder_refusal()
        return {
            "decisions": self.counters.to_dict(),
            "recorder": None
            if refusal is None
            else {"reason_code": refusal[0].value, "detail": refusal[1]},
            "state": {
                "available": view.available,
                "detail": view.unavailable_detail or None,
                "synced_at": view.synced_at,
                "control_version": self._version,
            },
            "control_lane": None if self._follower is None else self._follower.status(),
        }

    async def stop(self) -> None:
        """Stop following; record every queued decision (up to ``stop_timeout``)."""
        follow, publish, *control = self._tasks or (None, None)
        for task in control:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._follower = None
        if follow is not None:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow
        if publish is not None:
            try:
                await asyncio.wait_for(self._queue.join(), self.config.stop_timeout)
            except TimeoutError:
                log.error("%d decision(s) not recorded at stop", self.counters.pending)
            publish.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publish
            self.counters.failed += self.counters.pending
        self._tasks = []
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def decide(self, request: CallRequest) -> Decision:
        """The answer to ``request``; its event is queued for Kafka before this returns."""
        decision = decide_call(self._view, request, time.time(), self.config.settings)
        if decision.allowed and (refusal := self.recorder_refusal()):
            # the call must not run without its signed trace on the ledger
            decision = unrecordable(decision, *refusal)
        if decision.allowed:
            decision = await self._use_nonce(decision, request)
        elif decision.seen_event_id is not None:
            self.seen.note_denial(decision.seen_event_id)
        self.counters.made += 1
        signed = self._signed(decision)
        if signed is not None:
            try:
                self._queue.put_nowait(signed)
            except asyncio.QueueFull:
                await self._queue.put(signed)
        return decision

    def _signed(self, decision: Decision) -> list[RawEvent] | None:
        """The decision's events, signed; ``None`` (logged, counted as failed) when the
        schema refuses one: a bug, not an outage, and never a reason to not answer."""
        from producers.sdk import sign_many  # loaded by start() already

        events = [
            NewEvent(
                decision.event_type,
                decision.stream,
                decision.event_body(),
                decision.decision_id,
                decision.decided_at,
            )
        ]
        for shadow in decision.disagreements():
            event_id = shadow_event_id(decision.decision_id, shadow.policy_hash_b64u)
            body = shadowed_body(decision, shadow)
            events.append(
                NewEvent("call.shadowed", decision.stream, body, event_id, decision.decided_at)
            )
        try:
            return sign_many(self.key, events)
        except EventError as exc:
            log.error("decision %s cannot be recorded: %s", decision.decision_id, exc)
            self.counters.failed += 1
            return None

    async def _use_nonce(self, decision: Decision, request: CallRequest) -> Decision:
        assert decision.token_jti is not None
        if self._store is None:
            return unavailable(decision, "the nonce store is not connected")
        try:
            fresh = await self._store.claim_nonce(
                decision.token_jti, request.nonce, decision.decision_id
            )
        except ServiceError as exc:
            self._view = self._view.failed(str(exc))
            self._wake.set()
            return unavailable(decision, f"the nonce cannot be checked: {exc}")
        return decision if fresh else replayed(decision)

    # --- following the ledger ----------------------------------------------------

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
            self._wake.clear()
            try:
                await self._sync()
            except Exception as exc:  # a bug must not leave a state that looks fresh
                log.exception("authorize state not refreshed")
                self._view = self._view.failed(f"internal error: {exc!r}")

    async def _sync(self) -> None:
        """Read the heartbeat, then the control rows written since our version.

        In that order: everything the processor had committed when it wrote the
        heartbeat is then in our state, so the state is as fresh as the beat.
        """
        from storage.authorize_queries import AuthorizeStore

        try:
            if self._store is None:
                self._store = await AuthorizeStore.open(self.config.database_url)
            await self._store.listen(self._wake.set)
            beat = await self._store.heartbeat()
            # asked before the state is read: whatever it finds committed is in that state
            pending = self.seen.pending()[:_SETTLE_BATCH]
            outcomes = (
                await self._store.seen_outcomes({c.event_id: c.envelope_sha256 for c in pending})
                if pending
                else {}
            )
            if self._version < 0:
                await self._load_all()
            elif await self._store.control_version() != self._version:
                changed = LedgerState()
                self._version = await self._store.load_since(self._version, changed)
                _merge(self._state, changed)
                self._view = self._view.updated(self._state, changed.keys)
            self._settle(pending, outcomes)
        except (ServiceError, ControlPlaneTamperedError) as exc:
            if self._view.available:
                log.warning("authorize state unavailable: %s", exc)
            self._view = self._view.failed(str(exc))
            return
        synced_at = None if beat is None else time.time() - beat.age_seconds
        self._view = self._view.refreshed(synced_at)

    async def _load_all(self) -> None:
        assert self._store is not None
        version, state, stored = await self._store.load_all()
        computed = state_digests(state)
        tampered = {
            table: (digest_hex(digest), digest_hex(computed[table]))
            for table in CONTROL_DIGEST_TABLES
            if (digest := stored.get(table)) is not None and digest != computed[table]
        }
        if tampered:
            raise ControlPlaneTamperedError(tampered)
        self._state, self._version = state, version
        self._view = DecisionView.of(state, None, seen_controls=self.seen)

    def _settle(
        self, pending: list[SeenControl], outcomes: dict[str, tuple[str | None, str | None]]
    ) -> None:
        """Drop the seen events the ledger committed (the state read after holds
        them) and lift those it refused; synchronous with the state's update."""
        now = time.time()
        for control in pending:
            committed_hash, quarantined = outcomes.get(control.event_id, (None, None))
            outcome = resolution(control, committed_hash, quarantined)
            if outcome == "committed":
                self.seen.committed(control.event_id)
            elif outcome is not None:
                lifted = self.seen.lift(control.event_id, outcome[1], now)
                if lifted is not None:
                    log.warning(
                        "seen %s %s (event %s) lifted: the ledger refused it (%s); %d"
                        " decision(s) it denied keep their signed record naming it,"
                        " decisions from now on follow the committed state",
                        control.event_type,
                        control.subject,
                        control.event_id,
                        outcome[1],
                        lifted.denied,
                    )

    # --- recording decisions -------------------------------------------------------

    async def _publish(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < _PUBLISH_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._send(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _send(self, batch: list[list[RawEvent]]) -> None:
        events = [event for decision in batch for event in decision]
        delay = 0.1
        while True:
            assert self._producer is not None
            try:
                # the same event id and bytes when re-sent: a duplicate, never a second row
                await self._producer.send_raw_many(events)
            except Exception as exc:
                log.warning("decisions not recorded yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.counters.recorded += len(batch)
            self.counters.shadowed += len(events) - len(batch)
            return
