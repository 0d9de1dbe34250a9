"""The contract on control rows read or written by a plan and changed before its
commit (ADR 0029, ADR 0030): on both stores, such a batch is refused and planned
again, never committed on a stale view."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest

from consumers.processor import VerifyingProcessor
from ledger.batch import (
    IngressRecord,
)
from ledger.crypto import KeyPair
from ledger.errors import (
    ReasonCode,
    StaleBatchError,
)
from ledger.events import build_event, sign_event
from ledger.plan_reads import PlanReads
from ledger.state import LedgerState, ProjectionRow
from ledger.wpc import policy_hash_b64u, sign_wpc
from storage.protocol import BatchCommit, LedgerStore
from tests.contract._store_helpers import (
    ADMIN,
    GROUP,
    OPERATOR,
    SETUP,
    TOPIC,
    commit_plan,
    halt_event,
    plan_values,
    planned_ids,
    recorded_hashes,
    register_event,
)
from tests.fixtures_events import policy_attested, token_issued


def _shadow_row(reason: str) -> ProjectionRow:
    values = {
        "scope": "job:1",
        "policy_hash_b64u": "A" * 43,
        "active": True,
        "reason": reason,
        "shadowed_by": ADMIN.did,
        "shadowed_at": "2026-02-12T00:00:00.000Z",
        "shadowed_event_id": "00000000-0000-4000-8000-000000000001",
    }
    return ProjectionRow("shadows", "scope", values)


async def test_a_changed_row_of_a_table_without_a_digest_refuses_the_batch_too(
    store: LedgerStore,
) -> None:
    """Shadow policies carry no digest: their rows are checked by a query of their own."""
    first = plan_values([b"not json"])
    committed = BatchCommit(GROUP, TOPIC, first.batches, [_shadow_row("a")], control_base=0)
    assert await store.commit_batch(committed) == 1
    positions = await store.load_positions(GROUP, TOPIC)
    second = plan_values([b"{}"], first_offset=1, positions=positions)
    stale = BatchCommit(GROUP, TOPIC, second.batches, [_shadow_row("b")], control_base=0)
    refused = "shadows row 'job:1' was changed at control version 1"
    with pytest.raises(StaleBatchError, match=refused):
        await store.commit_batch(stale)
    current = BatchCommit(GROUP, TOPIC, second.batches, [_shadow_row("b")], control_base=1)
    assert await store.commit_batch(current) == 2


@pytest.mark.parametrize(
    ("reads", "refused"),
    [
        (PlanReads(whole=frozenset({"shadows"})), True),
        (PlanReads(keys={"shadows": frozenset({"job:1"})}), True),
        (PlanReads(keys={"shadows": frozenset({"job:2"})}), False),
        (PlanReads(keys={"policies": frozenset({"job:1"})}), False),
        (PlanReads(), False),
    ],
    ids=["whole-table", "that-key", "another-key", "another-table", "nothing"],
)
async def test_a_batch_that_only_read_a_changed_row_is_refused(
    store: LedgerStore, reads: PlanReads, refused: bool
) -> None:
    """A batch writing no control row is checked on what its plan read: a key
    (present or absent), or a whole table, changed after its base refuses it."""
    first = plan_values([b"not json"])
    committed = BatchCommit(GROUP, TOPIC, first.batches, [_shadow_row("a")], control_base=0)
    assert await store.commit_batch(committed) == 1
    positions = await store.load_positions(GROUP, TOPIC)
    second = plan_values([b"{}"], first_offset=1, positions=positions)
    reader = BatchCommit(GROUP, TOPIC, second.batches, [], control_base=0, control_reads=reads)
    if refused:
        with pytest.raises(StaleBatchError, match="shadows row 'job:1' was changed"):
            await store.commit_batch(reader)
        assert (await store.load_positions(GROUP, TOPIC)) == positions  # nothing written
        reader = BatchCommit(GROUP, TOPIC, second.batches, [], control_base=1, control_reads=reads)
    assert await store.commit_batch(reader) is None
    assert (await store.load_positions(GROUP, TOPIC))[0].next_offset == 2


POLICY_ADMIN = KeyPair.from_seed(bytes([3]) * 32, "policy-admin")


def _by_policy_admin(event_type: str, stream: str, body: dict[str, Any]) -> bytes:
    return sign_event(build_event(event_type, stream, body, POLICY_ADMIN), POLICY_ADMIN).to_bytes()


def _published(purpose: str) -> tuple[str, bytes]:
    document = {"wpc_version": "1", "purpose": purpose}
    digest = policy_hash_b64u(document)
    envelope = sign_wpc(document, POLICY_ADMIN).to_bytes().decode()
    body = {"policy_hash_b64u": digest, "wpc_envelope_json": envelope}
    return digest, _by_policy_admin("policy.published", f"policy:{digest}", body)


async def test_a_control_row_changed_after_the_plan_refuses_the_batch(
    store: LedgerStore,
) -> None:
    state = LedgerState(trust_root=ADMIN.did)
    assert await commit_plan(store, plan_values(SETUP, state=state)) == 1
    ingress_positions = await store.load_positions(GROUP, TOPIC)
    # two lanes plan from the same state at version 1; the control lane commits first
    first = plan_values(
        [halt_event("job:1")], first_offset=2, positions=ingress_positions, state=state
    )
    second = plan_values([halt_event("job:1")], state=copy.deepcopy(state))
    control = BatchCommit(GROUP, "control", second.batches, second.projections, control_base=1)
    assert await store.commit_batch(control) == 2
    stale = BatchCommit(GROUP, TOPIC, first.batches, first.projections, control_base=1)
    with pytest.raises(StaleBatchError, match="halts row 'job:1' was changed at control version 2"):
        await store.commit_batch(stale)
    # nothing of the refused batch was written
    assert await store.control_version() == 2
    assert await recorded_hashes(store, planned_ids(first)) == {}
    # planned again on the state at version 2, it commits
    current = BatchCommit(GROUP, TOPIC, first.batches, first.projections, control_base=2)
    assert await store.commit_batch(current) == 3


async def _two_lanes(
    store: LedgerStore, setup: Sequence[bytes]
) -> tuple[VerifyingProcessor, VerifyingProcessor]:
    """An ingress and a control processor on ``store``, ``setup`` committed by the first."""
    await store.set_trust_root(ADMIN.did)
    ingress = VerifyingProcessor(store, group=GROUP, topic=TOPIC, trust_root=None)
    await ingress.start()
    records = [IngressRecord(0, i, raw) for i, raw in enumerate(setup)]
    assert len((await ingress.process(records)).accepted) == len(setup)
    control = VerifyingProcessor(store, group=GROUP, topic="control", trust_root=None)
    await control.start()
    return ingress, control


def _control_commits_first(
    store: LedgerStore,
    monkeypatch: pytest.MonkeyPatch,
    control: VerifyingProcessor,
    raw: bytes,
    *,
    offset: int = 0,
) -> list[str]:
    """Let ``control`` commit ``raw`` (at ``offset`` of its topic) inside the next
    ``commit_batch`` of another topic, between that batch's plan and its commit; the
    list returned tells what happened ("committed", then "refused" when the store
    refused the other batch)."""
    commit_batch = store.commit_batch
    seen: list[str] = []

    async def control_first(commit: BatchCommit) -> int | None:
        if commit.topic != control.topic and not seen:
            seen.append("committed")
            record = IngressRecord(0, offset, raw)
            assert len((await control.process([record])).accepted) == 1
        try:
            return await commit_batch(commit)
        except StaleBatchError:
            seen.append("refused")
            raise

    monkeypatch.setattr(store, "commit_batch", control_first)
    return seen


async def test_a_supersede_planned_before_a_revocation_cannot_revive_the_revoked_wpc(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingress lane plans `policy.superseded` OLD -> NEW; before it commits, the
    control lane commits `policy.revoked` NEW. Written from the plan's state, the
    supersede would store NEW as active again (its row carries `supersedes`)."""
    old, publish_old = _published("old")
    new, publish_new = _published("new")
    setup = [
        *SETUP,
        register_event(POLICY_ADMIN.did, "pa", "policy-admin"),
        publish_old,
        publish_new,
    ]
    ingress, control = await _two_lanes(store, setup)
    revoke = {"policy_hash_b64u": new, "reason": "leaks secrets"}
    revocation = _by_policy_admin("policy.revoked", f"policy:{new}", revoke)
    supersede = {"old_policy_hash_b64u": old, "new_policy_hash_b64u": new, "reason": "tighter"}
    superseding = _by_policy_admin("policy.superseded", f"policy:{old}", supersede)
    seen = _control_commits_first(store, monkeypatch, control, revocation)
    report = await ingress.process([IngressRecord(0, len(setup), superseding)])
    assert seen == ["committed", "refused"]
    # planned again after the revocation: superseding by a revoked WPC is refused
    assert report.accepted == []
    assert [q.code for q in report.quarantined] == [ReasonCode.WPC_REVOKED]
    _, stored = await store.load_state_snapshot(ADMIN.did)
    assert stored.policies[new]["status"] == "revoked"
    assert stored.policies[old]["status"] == "active"


ISSUER = KeyPair.from_seed(bytes([4]) * 32, "issuer")


async def test_a_token_planned_before_its_wpc_was_revoked_is_planned_again(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingress lane plans `token.issued` pinned to P while P is active; before it
    commits, the control lane commits `policy.revoked` P. Committed as planned, the
    issuance follows the revocation in ledger order, and a replay of the ledger
    refuses it (`WPC_REVOKED`): a break on an honest ledger. It must be planned
    again on the state that holds the revocation instead."""
    wpc, publish = _published("read")
    setup = [
        *SETUP,
        register_event(POLICY_ADMIN.did, "pa", "policy-admin"),
        register_event(ISSUER.did, "issuer", "issuer"),
        publish,
    ]
    ingress, control = await _two_lanes(store, setup)
    revoke = {"policy_hash_b64u": wpc, "reason": "leaks secrets"}
    revocation = _by_policy_admin("policy.revoked", f"policy:{wpc}", revoke)
    _, issuance = token_issued(ISSUER, wpc)

    seen = _control_commits_first(store, monkeypatch, control, revocation)
    report = await ingress.process([IngressRecord(0, len(setup), issuance)])
    assert seen == ["committed", "refused"]
    assert report.accepted == []
    assert [q.code for q in report.quarantined] == [ReasonCode.WPC_REVOKED]


async def test_an_event_planned_before_its_signer_was_revoked_is_planned_again(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that writes no control row at all (an attestation) only read its
    signer's key: a revocation of that key committed between its plan and its
    commit sends it back to be planned on the state that holds the revocation."""
    ingress, control = await _two_lanes(store, SETUP)
    revoke = {"did": OPERATOR.did, "reason": "key leaked"}
    revocation = sign_event(build_event("key.revoked", f"key:{OPERATOR.did}", revoke, ADMIN), ADMIN)
    attestation = policy_attested(OPERATOR)
    seen = _control_commits_first(store, monkeypatch, control, revocation.to_bytes())
    report = await ingress.process([IngressRecord(0, len(SETUP), attestation)])
    assert seen == ["committed", "refused"]
    assert report.accepted == []
    assert [q.code for q in report.quarantined] == [ReasonCode.SIGNER_REVOKED]


async def test_a_halt_planned_before_a_token_of_its_scope_was_issued_revokes_it_too(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control lane plans a full stop of ``sub:agent:a``, which revokes every
    active token of that subject it finds; before it commits, the ingress lane
    commits a new token for agent:a. Committed as planned, the halt would leave that
    token active although the ledger holds it before the halt (the scope it looked
    through changed): it is planned again and revokes the token as well."""
    wpc, publish = _published("scope")
    setup = [
        *SETUP,
        register_event(POLICY_ADMIN.did, "pa", "policy-admin"),
        register_event(ISSUER.did, "issuer", "issuer"),
        publish,
    ]
    ingress, control = await _two_lanes(store, setup)
    jti, issuance = token_issued(ISSUER, wpc)
    seen = _control_commits_first(store, monkeypatch, ingress, issuance, offset=len(setup))
    report = await control.process([IngressRecord(0, 0, halt_event("sub:agent:a"))])
    assert seen == ["committed", "refused"]
    assert len(report.accepted) == 1
    _, stored = await store.load_state_snapshot(ADMIN.did)
    assert stored.tokens[jti]["status"] == "revoked"
