"""The replay tests' events: a signed flow from fixed keys, and the rows a processor stores."""

from __future__ import annotations

import json
import uuid
from typing import Any

from ledger.batch import EventRow, IngressRecord, pending_records, plan_batch
from ledger.crypto import KeyPair
from ledger.envelope import sign_envelope
from ledger.events import EVENT_ENVELOPE_TYPE
from ledger.replay import StoredEvent
from ledger.state import LedgerState
from ledger.verify import verify_message
from tests.primitives._support import ROLES, Ledger, ts

ADMIN_ROLES = ("admin",)


def _raw(signer: KeyPair, event_type: str, stream: str, body: dict[str, Any], at: str) -> bytes:
    payload = {
        "event_type": event_type,
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stream} {at} {json.dumps(body)}")),
        "stream": stream,
        "occurred_at": at,
        "producer": signer.did,
        "body": body,
    }
    return sign_envelope(EVENT_ENVELOPE_TYPE, payload, signer).to_bytes()


def _registrations(ledger: Ledger) -> list[bytes]:
    admin = ledger.keys.admin
    out = [
        _raw(
            admin,
            "key.registered",
            f"key:{admin.did}",
            {"did": admin.did, "name": "admin", "roles": list(ADMIN_ROLES)},
            ts(-100),
        )
    ]
    for n, (attr, roles) in enumerate(ROLES.items()):
        if attr == "admin":
            continue
        kp: KeyPair = getattr(ledger.keys, attr)
        body = {"did": kp.did, "name": attr, "roles": [r.value for r in roles]}
        out.append(_raw(admin, "key.registered", f"key:{kp.did}", body, ts(-90 + n)))
    return out


def build_flow() -> tuple[list[bytes], Ledger]:
    """Registrations, then a WPC, a pinned token, a URM, a run, a halt and a resume."""
    ledger = Ledger()
    ledger.started_job("job-1")
    operator = ledger.keys.operator
    wpc = ledger.state.jobs["job-1"]["wpc_hash_b64u"]
    for event_type, body in (
        ("agent.halted", {"reason": "drill"}),
        ("agent.resumed", {"reason": "over", "policy_hash_b64u": wpc}),
    ):
        ledger.ok(
            operator, event_type, "halt:job:job-1", {"target": "job:job-1", **body}, at=ts(120)
        )
    raws = _registrations(ledger) + [a.verified.envelope.to_bytes() for a in ledger.accepted]
    return raws, ledger


def _stored(raws: list[bytes], partition_of: Any = lambda _raw: 0) -> list[StoredEvent]:
    """The rows the processor would store for ``raws`` (decided in this order)."""
    state = LedgerState(trust_root=json.loads(raws[0])["signer_did"])
    positions: dict[int, Any] = {}
    out: list[StoredEvent] = []
    for n, raw in enumerate(raws):
        record = IngressRecord(partition_of(raw), n, raw)
        plan = plan_batch(
            state, positions, pending_records(positions, [record], [verify_message(raw)]), {}
        )
        (batch,) = plan.batches
        (row,) = batch.events
        positions[batch.partition] = batch.new_position
        out.append(_from_row(row, batch.partition, n + 1))
    return out


def _from_row(row: EventRow, partition: int, position: int) -> StoredEvent:
    return StoredEvent(
        raw=row.envelope_raw,
        partition=partition,
        offset=row.kafka_offset,
        ledger_seq=row.ledger_seq,
        prev_chain_hash=row.prev_chain_hash,
        chain_hash=row.chain_hash,
        position=position,
        event_id=row.event_id,
    )
