"""Keys, events and plans the store contract tests share (fixed keys: reproducible)."""

from __future__ import annotations

from collections.abc import Sequence

from ledger.batch import (
    BatchPlan,
    IngressRecord,
    PartitionPosition,
    pending_records,
    plan_batch,
)
from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event
from ledger.state import LedgerState
from ledger.verify import verify_message
from storage.protocol import BatchCommit, ControlQuery, LedgerStore

ADMIN = KeyPair.from_seed(bytes([1]) * 32, "admin")
OPERATOR = KeyPair.from_seed(bytes([2]) * 32, "operator")
GROUP, TOPIC = "verifier", "ingress"


async def recorded_hashes(store: LedgerStore, event_ids: Sequence[str]) -> dict[str, str]:
    """The payload hashes of ``event_ids`` in the ledger (the processor's duplicate check)."""
    since = await store.control_version()
    return (await store.read_control(ControlQuery(None, since=since, event_ids=event_ids))).recorded


def register_event(did: str, name: str, role: str) -> bytes:
    body = {"did": did, "name": name, "roles": [role]}
    return sign_event(build_event("key.registered", f"key:{did}", body, ADMIN), ADMIN).to_bytes()


def halt_event(target: str) -> bytes:
    body = {"target": target, "reason": "drill"}
    event = build_event("agent.halted", f"halt:{target}", body, OPERATOR)
    return sign_event(event, OPERATOR).to_bytes()


SETUP = (
    register_event(ADMIN.did, "admin", "admin"),
    register_event(OPERATOR.did, "operator", "operator"),
)


def plan_values(
    values: Sequence[bytes],
    *,
    partition: int = 0,
    first_offset: int = 0,
    positions: dict[int, PartitionPosition] | None = None,
    state: LedgerState | None = None,
) -> BatchPlan:
    records = [IngressRecord(partition, first_offset + i, v) for i, v in enumerate(values)]
    verdicts = [verify_message(r.value) for r in records]
    positions = positions or {}
    pending = pending_records(positions, records, verdicts)
    return plan_batch(state or LedgerState(trust_root=ADMIN.did), positions, pending, {})


async def commit_plan(
    store: LedgerStore, plan: BatchPlan, *, copies_tracked: bool = True
) -> int | None:
    return await store.commit_batch(
        BatchCommit(GROUP, TOPIC, plan.batches, plan.projections, copies_tracked)
    )


def planned_ids(plan: BatchPlan) -> list[str]:
    return [e.event_id for b in plan.batches for e in b.events]


def first_state() -> LedgerState:
    """The control state after SETUP (so a halt by the operator is accepted)."""
    state = LedgerState(trust_root=ADMIN.did)
    plan_values(SETUP, state=state)
    return state
