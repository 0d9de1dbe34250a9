"""decide, steps 4-6 of the processor's pure pipeline, over verified ledger events: the
roles table, the trust root's bootstrap, signers and their roles, duplicates and
revocation."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.envelope import sign_envelope
from ledger.errors import EventError, ReasonCode
from ledger.events import EVENT_ENVELOPE_TYPE, build_event
from ledger.registry import RuleSettings
from ledger.roles import Role, roles_allowed_for
from ledger.state import LedgerState
from ledger.types import REGISTRY, halts
from ledger.verify import Duplicate, Rejected, decide

from ._events_support import (
    ADMIN2,
    H1,
    OPERATOR,
    OUTSIDER,
    ROOT,
    RUNTIME,
    accept,
    bootstrapped,
    event_raw,
    new_id,
    refused,
    register_raw,
    revoke_raw,
    run,
    verified,
)
from ._helpers import key

# --- roles table ------------------------------------------------------------------------------


def test_roles_table_least_privilege() -> None:
    assert roles_allowed_for("key.registered") == {Role.ADMIN}
    assert roles_allowed_for("agent.halted") == {Role.OPERATOR}
    assert roles_allowed_for("token.revoked") == {Role.ISSUER, Role.OPERATOR}
    assert roles_allowed_for("nope") == frozenset()
    assert REGISTRY.types_allowed_for(Role.APPROVER) == frozenset()
    assert REGISTRY.types_allowed_for(Role.ADMIN) == {"key.registered", "key.revoked"}
    every = set().union(*(REGISTRY.types_allowed_for(role) for role in Role))
    assert set(REGISTRY.event_types()) <= every  # some role may publish every event type


# --- decide -----------------------------------------------------------------------------------


def test_trust_root_bootstrap_accepted_once() -> None:
    state = LedgerState(trust_root=ROOT.did)
    result = accept(state, register_raw(ROOT, ROOT, ["admin"]))
    record = state.keys[ROOT.did]
    assert record.roles == {Role.ADMIN}
    assert record.registered_by == ROOT.did
    assert not record.revoked
    (row,) = result.rows
    assert (row.table, row.key_column) == ("keys", "did")
    assert row.values["did"] == ROOT.did and row.values["roles"] == ["admin"]
    # a second self-registration (new event id) is refused
    assert refused(state, register_raw(ROOT, ROOT, ["admin"])) is ReasonCode.KEY_ALREADY_REGISTERED
    assert state.keys[ROOT.did].registered_event_id == result.verified.event.event_id


def test_trust_root_bootstrap_by_another_key_refused() -> None:
    state = LedgerState(trust_root=ROOT.did)
    # another key registering itself
    assert refused(state, register_raw(OUTSIDER, OUTSIDER, ["admin"])) is ReasonCode.UNKNOWN_SIGNER
    # another key registering the trust root
    assert refused(state, register_raw(OUTSIDER, ROOT, ["admin"])) is ReasonCode.UNKNOWN_SIGNER
    # the trust root registering some other key before itself
    assert refused(state, register_raw(ROOT, RUNTIME, ["runtime"])) is ReasonCode.UNKNOWN_SIGNER
    assert state.keys == {}


def test_no_trust_root_configured_means_no_bootstrap() -> None:
    state = LedgerState(trust_root=None)
    assert refused(state, register_raw(ROOT, ROOT, ["admin"])) is ReasonCode.UNKNOWN_SIGNER
    assert state.keys == {}


def test_trust_root_must_hold_admin() -> None:
    state = LedgerState(trust_root=ROOT.did)
    assert refused(state, register_raw(ROOT, ROOT, ["runtime"])) is ReasonCode.ROLE_NOT_ALLOWED
    assert state.keys == {}
    accept(state, register_raw(ROOT, ROOT, ["admin", "operator"]))


def test_admin_registers_keys_and_roles_apply() -> None:
    state = bootstrapped()
    assert state.keys[RUNTIME.did].roles == {Role.RUNTIME}
    assert state.keys[RUNTIME.did].registered_by == ROOT.did
    accept(state, register_raw(ADMIN2, key(20, "new"), ["gateway"]))
    assert state.keys[key(20).did].registered_by == ADMIN2.did


def test_unknown_signer() -> None:
    state = bootstrapped()
    raw = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, OUTSIDER)
    result = run(state, raw)
    assert isinstance(result, Rejected)
    assert result.code is ReasonCode.UNKNOWN_SIGNER
    assert result.signer_did == OUTSIDER.did
    assert result.event_id == verified(raw).event.event_id


def test_role_not_allowed() -> None:
    state = bootstrapped()
    assert (
        refused(state, register_raw(RUNTIME, key(21), ["runtime"])) is ReasonCode.ROLE_NOT_ALLOWED
    )
    halt = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, ROOT)
    assert refused(state, halt) is ReasonCode.ROLE_NOT_ALLOWED  # admin manages keys only
    assert key(21).did not in state.keys


def test_producer_not_signer() -> None:
    state = bootstrapped()
    event = build_event(
        "key.registered",
        f"key:{key(22).did}",
        {"did": key(22).did, "name": "x", "roles": ["runtime"]},
        ROOT,
    )
    raw = sign_envelope(EVENT_ENVELOPE_TYPE, event.to_payload(), ADMIN2).to_bytes()
    assert verified(raw).envelope.signer_did == ADMIN2.did  # the envelope itself is fine
    assert refused(state, raw) is ReasonCode.PRODUCER_MISMATCH
    # also decided before the signer registry: an unregistered signer claiming the root
    raw = sign_envelope(EVENT_ENVELOPE_TYPE, event.to_payload(), OUTSIDER).to_bytes()
    assert refused(state, raw) is ReasonCode.PRODUCER_MISMATCH
    assert key(22).did not in state.keys


def test_exact_duplicate_is_a_no_op() -> None:
    state = bootstrapped()
    raw = register_raw(ROOT, key(23), ["runtime"])
    first = accept(state, raw)
    keys_before = dict(state.keys)
    again = run(state, raw, first.verified.envelope.payload_hash_b64u)
    assert again == Duplicate(first.verified.event.event_id)
    assert state.keys == keys_before
    # without the recorded hash it would have been a re-registration
    assert refused(state, raw) is ReasonCode.KEY_ALREADY_REGISTERED


def test_same_event_id_different_content_is_conflict() -> None:
    state = bootstrapped()
    event_id = new_id()
    first = accept(state, register_raw(ROOT, key(24, "a"), ["runtime"], event_id=event_id))
    other = register_raw(ROOT, key(25, "b"), ["runtime"], event_id=event_id)
    result = run(state, other, first.verified.envelope.payload_hash_b64u)
    assert isinstance(result, Rejected)
    assert result.code is ReasonCode.DUPLICATE_EVENT_CONFLICT
    assert result.event_id == event_id
    assert result.signer_did == ROOT.did
    assert key(25).did not in state.keys


def test_duplicate_check_comes_before_signer_check() -> None:
    state = bootstrapped()
    raw = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, OUTSIDER)
    v = verified(raw)
    settings = RuleSettings()
    assert decide(state, v, v.envelope.payload_hash_b64u, settings) == Duplicate(v.event.event_id)
    conflict = decide(state, v, H1, settings)
    assert isinstance(conflict, Rejected)
    assert conflict.code is ReasonCode.DUPLICATE_EVENT_CONFLICT


def test_revocation_refuses_later_events() -> None:
    state = bootstrapped()
    accept(state, register_raw(ADMIN2, key(26), ["runtime"]))  # ADMIN2 works before
    accept(state, revoke_raw(ROOT, ADMIN2))
    assert state.keys[ADMIN2.did].revoked
    assert state.keys[ADMIN2.did].revoked_reason == "compromised"
    assert refused(state, register_raw(ADMIN2, key(27), ["runtime"])) is ReasonCode.SIGNER_REVOKED
    assert key(27).did not in state.keys
    # revoked twice, re-registered, or an unknown key revoked
    assert refused(state, revoke_raw(ROOT, ADMIN2)) is ReasonCode.SIGNER_REVOKED
    assert (
        refused(state, register_raw(ROOT, ADMIN2, ["admin"])) is ReasonCode.KEY_ALREADY_REGISTERED
    )
    assert refused(state, revoke_raw(ROOT, key(28))) is ReasonCode.UNKNOWN_SIGNER


def test_trust_root_cannot_be_revoked() -> None:
    state = bootstrapped()
    assert refused(state, revoke_raw(ADMIN2, ROOT)) is ReasonCode.ROLE_NOT_ALLOWED
    assert not state.keys[ROOT.did].revoked


def test_key_event_stream_must_name_the_key() -> None:
    state = bootstrapped()
    body = {"did": key(29).did, "name": "x", "roles": ["runtime"]}
    raw = event_raw("key.registered", f"key:{key(30).did}", body, ROOT)
    assert refused(state, raw) is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_registering_an_invalid_did() -> None:
    state = bootstrapped()
    did = "did:key:z6MkNOTAKEY"
    raw = event_raw(
        "key.registered", f"key:{did}", {"did": did, "name": "x", "roles": ["runtime"]}, ROOT
    )
    assert refused(state, raw) is ReasonCode.INVALID_DID_FORMAT


def test_same_key_cannot_be_registered_under_a_second_did() -> None:
    state = bootstrapped()
    did = RUNTIME.did + "\n"
    # the event schema (the same parse the processor runs) refuses the stream already
    with pytest.raises(EventError) as info:
        event_raw(
            "key.registered", f"key:{did}", {"did": did, "name": "x", "roles": ["admin"]}, ROOT
        )
    assert info.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    assert RUNTIME.did in state.keys


def test_rule_bug_quarantines_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ctx: Any, expected: str) -> None:
        raise KeyError("bug")

    # a helper the agent.halted rule calls, so that the rule itself fails
    monkeypatch.setattr(halts, "require_stream", boom)
    state = bootstrapped()
    raw = event_raw("agent.halted", "halt:*", {"target": "*", "reason": "x"}, OPERATOR)
    result = run(state, raw)
    assert isinstance(result, Rejected)
    assert result.code is ReasonCode.INTERNAL_ERROR
    assert "KeyError" in result.detail
