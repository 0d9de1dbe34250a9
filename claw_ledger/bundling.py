"""The bundling processor: seal each completed or halted run once, and Trust Pulse records.

:class:`Bundler` reads a run's events (reader role), proves each against one
signed checkpoint of the log (an :class:`~ledger.log_proofs.InclusionProofSource`,
by default the in-memory tree of :class:`~ledger.log_proofs.MemoryProofSource`),
builds the sealed bundle (:mod:`ledger.sealed_bundles`), stores its bytes in
``bundle_documents`` (writer role, INSERT only) and records ``bundle.sealed``
signed by the ledger key. Which runs are sealed is read back from the
``bundles`` projection, and the event id of an automatic seal is derived from
(run, trigger), so a restarted bundler never records a second seal of the same
trigger: the ledger refuses it as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from claw_ledger.config import Settings, effective_database_url, effective_kafka_bootstrap
from claw_ledger.topics import topics_for
from ledger.checkpoint import Checkpoint, NoteSigner, parse_note
from ledger.crypto import KeyPair
from ledger.envelope import format_timestamp
from ledger.errors import BundleError, LedgerError, ManifestError, ReasonCode, ServiceError
from ledger.log_proofs import EventsNotLogged, InclusionProofSource, MemoryProofSource, b64
from ledger.run_facts import run_streams
from ledger.sealed_bundles import LoggedEvent, build_sealed_bundle

__all__ = [
    "Bundler",
    "SealResult",
    "default_origin",
    "load_bundle",
    "publish_pulse",
    "seal_event_id",
]

_SEAL_NAMESPACE = uuid.UUID("a3f0c1d2-5b6e-4f70-8a9b-1c2d3e4f5a6b")
_PULSE_NAMESPACE = uuid.UUID("b4e1d2c3-6c7f-4081-9bac-2d3e4f5a6b7c")


def default_origin(settings: Settings) -> str:
    """The origin of the in-memory tree's checkpoints: its own, so that it never signs
    a second tree under the origin of the ledger's checkpointer."""
    return f"claw-ledger/{settings.topic_prefix}/bundler"


def seal_event_id(job_id: str, trigger: str) -> str:
    """The event id of the seal of ``job_id`` for ``trigger``: the same on every attempt."""
    return str(uuid.uuid5(_SEAL_NAMESPACE, f"{job_id}\n{trigger}"))


@dataclass(frozen=True)
class SealResult:
    """What one seal did: ``sealed``, ``already sealed`` or ``waiting`` (for the log)."""

    job_id: str
    trigger: str
    status: str
    bundle_hash_b64u: str | None = None
    checkpoint_size: int | None = None
    run_status: str | None = None
    event_count: int = 0
    receipt_count: int = 0
    position: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def _reader(url: str) -> Any:
    from storage.projection_queries import open_connection

    return await open_connection(url)


class Bundler:
    """Seals runs with ``key`` (a registered key holding the ``ledger`` role)."""

    def __init__(
        self,
        settings: Settings,
        key: KeyPair,
        *,
        origin: str | None = None,
        source: InclusionProofSource | None = None,
        proofs: str = "auto",
    ) -> None:
        self.key = key
        self.reader_url = effective_database_url(settings, role="reader")
        self.writer_url = effective_database_url(settings, role="writer")
        self.kafka = effective_kafka_bootstrap(settings)
        self.topics = topics_for(settings)
        self._memory: MemoryProofSource | None = None
        #: "auto" (without a source given): the checkpointer's log once it has signed a
        #: checkpoint, the in-memory tree before that (or on a ledger without one)
        self._choose_source = source is None and proofs == "auto"
        if source is None and proofs == "log":
            from storage.tlog_proofs import LogProofSource

            source = LogProofSource(self.reader_url)
        if source is None:
            self._memory = MemoryProofSource(NoteSigner(origin or default_origin(settings), key))
            source = self._memory
        self.source: InclusionProofSource = source

    async def _use_the_log_if_any(self) -> None:
        from storage.tlog_proofs import LogProofSource, log_has_checkpoint

        if self._choose_source and await log_has_checkpoint(self.reader_url):
            self.source = LogProofSource(self.reader_url)
            self._memory = None
            self._choose_source = False

    async def _refresh(self, conn: Any) -> None:
        from storage.bundle_queries import log_rows_after

        if self._memory is not None:
            self._memory.extend(await log_rows_after(conn, self._memory.included))

    async def triggers(self, job_id: str | None = None) -> list[tuple[str, str]]:
        """(run, trigger) pairs still to seal, for one run or all."""
        from storage.bundle_queries import seal_candidates

        conn = await _reader(self.reader_url)
        try:
            rows = await seal_candidates(conn)
        finally:
            await conn.close()
        return [(r["job_id"], r["trigger"]) for r in rows if job_id in (None, r["job_id"])]

    async def seal(self, job_id: str, trigger: str | None = None) -> SealResult:
        """Seal ``job_id`` now. Without ``trigger``: the run's pending automatic trigger
        (completed, halted) if any, else a new on-demand one."""
        if trigger is None:
            pending = await self.triggers(job_id)
            trigger = pending[0][1] if pending else f"demand:{uuid.uuid4()}"
        sealed = await self._build(job_id, trigger)
        if isinstance(sealed, SealResult):
            return sealed
        return await self._record(job_id, trigger, sealed)

    async def _build(self, job_id: str, trigger: str) -> Any:
        from storage.bundle_queries import bundles_for, run_event_rows
        from storage.projection_queries import get_job

        await self._use_the_log_if_any()
        conn = await _reader(self.reader_url)
        try:
            job = await get_job(conn, job_id)
            if job is None:
                raise ManifestError(ReasonCode.JOB_UNKNOWN, f"no approved job {job_id!r}")
            if job["status"] == "approved":
                raise ManifestError(
                    ReasonCode.RUN_NOT_STARTED,
                    f"job {job_id} has not started: there is no run to seal yet",
                )
            for row in await bundles_for(conn, job_id):
                if row["trigger"] == trigger:
                    return SealResult(
                        job_id,
                        trigger,
                        "already sealed",
                        bundle_hash_b64u=row["bundle_hash_b64u"],
                        checkpoint_size=row["checkpoint_size"],
                        run_status=row["run_status"],
                    )
            streams = run_streams(
                job_id, jti=job["cst_jti"], wpc=job["wpc_hash_b64u"], sub=job["sub"]
            )
            rows = await run_event_rows(conn, job_id, streams)
            await _refuse_archived_run(conn, job, {r["event_id"] for r in rows})
            await self._refresh(conn)
        finally:
            await conn.close()
        checkpoint = await self.source.checkpoint()
        try:
            proofs = await self.source.prove([r["event_id"] for r in rows], checkpoint)
        except EventsNotLogged as exc:
            return SealResult(job_id, trigger, "waiting", detail=str(exc))
        logged = [
            LoggedEvent(bytes(r["envelope_raw"]).decode("utf-8"), proofs[r["event_id"]])
            for r in rows
        ]
        return build_sealed_bundle(
            job_id, logged, checkpoint, self.key, trigger=trigger, sealed_at=format_timestamp()
        )

    async def _record(self, job_id: str, trigger: str, sealed: Any) -> SealResult:
        from producers.outcome import Quarantined, TimedOut
        from producers.publish import await_verdict
        from producers.sdk import LedgerProducer
        from storage import connect
        from storage.bundle_queries import store_bundle_document

        digest = sealed.bundle_hash_b64u
        conn = await connect(self.writer_url)
        try:
            await store_bundle_document(conn, digest, job_id, sealed.raw)
        finally:
            await conn.close()
        seal = sealed.envelope.payload["seal"]
        size = Checkpoint.parse(parse_note(seal["checkpoint"].encode()).text).size
        body = {
            "job_id": job_id,
            "bundle_hash_b64u": digest,
            "bundle_id": sealed.envelope.payload["bundle_id"],
            "trigger": trigger,
            "run_status": seal["run_status"],
            "checkpoint_size": size,
            "event_count": seal["counts"]["events"],
            "receipt_count": seal["counts"]["receipts"],
        }
        event_id = None if trigger.startswith("demand:") else seal_event_id(job_id, trigger)
        async with LedgerProducer(self.kafka, self.topics) as producer:
            sent = await producer.publish(
                self.key, "bundle.sealed", f"job:{job_id}", body, event_id=event_id
            )
        verdict = await await_verdict(self.reader_url, sent.event_id)
        result = SealResult(
            job_id,
            trigger,
            "sealed",
            bundle_hash_b64u=digest,
            checkpoint_size=size,
            run_status=seal["run_status"],
            event_count=body["event_count"],
            receipt_count=body["receipt_count"],
            position=getattr(verdict, "position", None),
        )
        if isinstance(verdict, Quarantined):
            if verdict.reason_code == ReasonCode.DUPLICATE_EVENT_CONFLICT:
                # an earlier attempt recorded this very trigger: that seal stands
                return SealResult(job_id, trigger, "already sealed", detail=verdict.detail)
            raise verdict.error("bundle.sealed")
        if isinstance(verdict, TimedOut):
            raise verdict.error(sent.event_id)
        return result

    async def check_key(self) -> None:
        """Refuse to start with a key whose ``bundle.sealed`` the ledger would quarantine."""
        from claw_ledger.checkpointer import require_ledger_key

        conn = await _reader(self.reader_url)
        try:
            await require_ledger_key(conn, self.key)
        finally:
            await conn.close()

    async def run_once(self, report: Callable[[SealResult], None] | None = None) -> int:
        """Seal every pending (run, trigger); the number sealed. A run that fails is
        reported and left for the next round."""
        sealed = 0
        for job_id, trigger in await self.triggers():
            try:
                result = await self.seal(job_id, trigger)
            except Exception as exc:  # one run's failure must not stop the others
                detail = str(exc) if isinstance(exc, LedgerError) else repr(exc)
                result = SealResult(job_id, trigger, "failed", detail=detail)
            if report is not None:
                report(result)
            sealed += result.status == "sealed"
        return sealed

    async def run(
        self,
        *,
        interval: float,
        stop: asyncio.Event,
        report: Callable[[SealResult], None] | None = None,
    ) -> None:
        while not stop.is_set():
            try:
                await self.run_once(report)
            except ServiceError as exc:
                if report is not None:
                    report(SealResult("-", "-", "failed", detail=str(exc)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


async def load_bundle(settings: Settings, job_id: str, bundle_hash: str | None = None) -> Any:
    """(bundles row, exact bytes) of the newest sealed bundle of a run, or the one named."""
    from storage.bundle_queries import bundle_document, bundles_for

    conn = await _reader(effective_database_url(settings, role="reader"))
    try:
        rows = await bundles_for(conn, job_id)
        if bundle_hash is not None:
            rows = [r for r in rows if r["bundle_hash_b64u"] == bundle_hash]
        if not rows:
            raise ManifestError(
                ReasonCode.JOB_UNKNOWN,
                f"no sealed bundle of job {job_id!r}"
                + (f" with hash {bundle_hash}" if bundle_hash else ""),
                hint=f"seal it with `claw-ledger bundle seal {job_id} --key ledger`",
            )
        row = rows[-1]
        raw = await bundle_document(conn, row["bundle_hash_b64u"])
    finally:
        await conn.close()
    if raw is None:
        raise ServiceError(
            f"bundle {row['bundle_hash_b64u']} of job {job_id} is recorded, but its bytes"
            " are not stored in bundle_documents",
            hint=f"seal the run again: `claw-ledger bundle seal {job_id} --key ledger`",
        )
    return row, raw


def pulse_record_of(raw: bytes, ledger_did: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The Trust Pulse record of a stored bundle, verified against ``ledger_did``."""
    from ledger.canonical import parse_json_strict
    from ledger.offline_verify import verify_bytes
    from ledger.pulse import build_pulse_record

    result = verify_bytes(raw, ledger_key=ledger_did)
    seal = parse_json_strict(raw)["payload"]["seal"]
    checkpoint = Checkpoint.parse(parse_note(seal["checkpoint"].encode()).text)
    urm = seal.get("urm") or {}
    return build_pulse_record(
        job_id=str(row["job_id"]),
        bundle_hash_b64u=str(row["bundle_hash_b64u"]),
        bundle_id=str(row["bundle_id"]),
        policy_hash_b64u=(urm.get("policy") or {}).get("wpc_hash_b64u"),
        run_status=str(row["run_status"]),
        counts=seal["counts"],
        valid=result.valid,
        reason_code=result.reason_code,
        checkpoint={
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root_hash_b64": b64(checkpoint.root_hash),
        },
    )


async def publish_pulse(
    settings: Settings, key: KeyPair, job_id: str, bundle_hash: str | None = None
) -> tuple[str, dict[str, Any], Any]:
    """Verify the run's sealed bundle and record its Trust Pulse record:
    (pulse id, record, publish outcome). Publishing the same record again is a no-op."""
    from ledger.pulse import pulse_id
    from producers.outcome import PublishOutcome
    from producers.publish import PublishTarget, await_verdict
    from producers.sdk import LedgerProducer

    row, raw = await load_bundle(settings, job_id, bundle_hash)
    record = pulse_record_of(raw, key.did, row)
    identity = pulse_id(record)
    topics = topics_for(settings)
    target = PublishTarget(
        effective_kafka_bootstrap(settings),
        topics.ingress,
        effective_database_url(settings, role="reader"),
        control_topic=topics.control,
    )
    async with LedgerProducer(target.kafka_bootstrap, target.topics) as producer:
        sent = await producer.publish(
            key,
            "pulse.published",
            f"job:{job_id}",
            {"pulse_id": identity, "record": record},
            event_id=str(uuid.uuid5(_PULSE_NAMESPACE, identity)),
        )
    verdict = await await_verdict(target.database_url, sent.event_id)
    return identity, record, PublishOutcome("pulse.published", sent, verdict)


async def _refuse_archived_run(conn: Any, job: Mapping[str, Any], found: Collection[str]) -> None:
    """Fail closed when the run's manifest or WPC event was detached by ``archive detach``:
    a bundle sealed now would leave out what the run rests on, and every event after it
    follows the manifest, so these two tell whether the run is whole in ``events``."""
    from storage.api_queries import archived_event
    from storage.projection_queries import get_policy

    policy = await get_policy(conn, job["wpc_hash_b64u"])
    needed = [("run.manifest_approved", job["approved_event_id"])]
    if policy is not None:
        needed.append(("policy.published", policy["published_event_id"]))
    for event_type, event_id in needed:
        if event_id in found:
            continue
        archived = await archived_event(conn, event_id)
        if archived is not None:
            raise BundleError(
                ReasonCode.BUNDLE_EVENTS_ARCHIVED,
                f"job {job['job_id']}'s {event_type} (event {event_id}, position"
                f" {archived['position']:,}) is archived: positions below"
                f" {archived['before_position']:,} were detached (partition"
                f" {archived['partition_name']}), and a bundle sealed now would leave it out",
                hint="attach that partition again to seal this run, or export a bundle"
                " sealed before the cut (`claw-ledger bundle export`)",
            )
