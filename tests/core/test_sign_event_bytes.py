"""The SDK's lean signing path makes the reference path's bytes, and refuses what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.errors import EventError, ReasonCode
from ledger.events import sign_event_bytes, sign_events_bytes
from ledger.types.halts import AgentHalted
from ledger.verify import Verified, verify_message
from producers.gateway import ReceiptBinding, build_gateway_receipt, receipt_event
from producers.sdk import NewEvent, sign_many

from ._canonical_support import safe_ints, texts, verifiable_text
from ._sign_reference import AT, EVENT_ID, KEY, reference

SIGNED_AT = "2026-02-12T00:00:01.500Z"


def outcome(function: Any, *args: Any, **kw: Any) -> tuple[str, Any]:
    try:
        return "signed", function(*args, **kw)
    except EventError as exc:
        return "refused", exc.code
    except Exception as exc:
        return "raised", type(exc)


attested_bodies = st.fixed_dictionaries(
    {
        "ok": st.booleans() | st.just("yes"),
        "policy_hash": st.none() | verifiable_text,
        "workspace_hash": texts(),
        "findings_hash": verifiable_text,
        "attestation_hash": verifiable_text,
        "checked_at": verifiable_text,
        "policy_path": verifiable_text,
        "findings_count": safe_ints | st.just(2**60) | st.just(1.5) | st.just("3"),
    },
    optional={"extra": st.integers()},
)
streams = st.sampled_from(
    ["openclaw-policy:ws-1", "openclaw-policy:\U0001f600", "job:1", "openclaw-policy:a b", "X:y"]
)
event_ids = st.sampled_from([None, EVENT_ID, EVENT_ID.upper(), "not-a-uuid"])
times = st.sampled_from(
    [None, AT, "2026-02-30T00:00:00Z", "yesterday", "2026-02-12T00:00:00+02:00"]
)


@settings(max_examples=300, deadline=None, database=None)
@given(attested_bodies, streams, event_ids, times)
@example({"ok": True}, "openclaw-policy:ws-1", None, None)
def test_lean_path_signs_and_refuses_exactly_as_build_and_sign(
    body: dict[str, Any], stream: str, event_id: str | None, occurred_at: str | None
) -> None:
    kw = {"event_id": event_id or EVENT_ID, "occurred_at": occurred_at or AT}
    assert outcome(sign_event_bytes, KEY, "policy.attested", stream, body, **kw) == outcome(
        reference, "policy.attested", stream, body, **kw
    )


def test_unknown_event_type_and_wrong_stream_kind_are_refused_with_their_codes() -> None:
    with pytest.raises(EventError) as unknown:
        sign_event_bytes(KEY, "no.such.type", "job:1", {})
    assert unknown.value.code is ReasonCode.UNKNOWN_EVENT_TYPE
    with pytest.raises(EventError) as misfiled:
        sign_event_bytes(KEY, "agent.halted", "job:1", {"target": "*", "reason": "r"})
    assert misfiled.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_defaults_are_a_fresh_id_and_now_for_both_times() -> None:
    event_id, raw = sign_event_bytes(
        KEY, "agent.halted", "halt:*", AgentHalted(target="*", reason="stop")
    )
    verified = verify_message(raw)
    assert isinstance(verified, Verified), verified
    assert verified.event.event_id == event_id
    assert verified.envelope.issued_at == verified.event.occurred_at
    assert raw == rfc8785.dumps(json.loads(raw))
    assert sign_event_bytes(KEY, "agent.halted", "halt:*", {"target": "*", "reason": "s"})[0] != (
        event_id
    )


def test_issued_at_is_kept_apart_from_occurred_at() -> None:
    kw: dict[str, Any] = {"event_id": EVENT_ID, "occurred_at": AT, "issued_at": SIGNED_AT}
    body = {"target": "*", "reason": "stop"}
    signed = sign_event_bytes(KEY, "agent.halted", "halt:*", body, **kw)
    assert signed == reference("agent.halted", "halt:*", body, **kw)
    assert json.loads(signed[1])["issued_at"] == SIGNED_AT


def test_a_body_with_floats_takes_the_reference_path_and_is_refused_there() -> None:
    body = {"job_id": "j", "urm_hash_b64u": "A" * 43, "urm": {"x": 1.5}, "approvals": []}
    event_id, raw = sign_event_bytes(KEY, "run.manifest_approved", "job:j", body, event_id=EVENT_ID)
    occurred_at = json.loads(raw)["payload"]["occurred_at"]
    assert (event_id, raw) == reference(
        "run.manifest_approved", "job:j", body, event_id=EVENT_ID, occurred_at=occurred_at
    )
    assert isinstance(verify_message(raw), Verified)


def test_sign_many_keeps_the_order_given_and_every_event_verifies() -> None:
    drafts = [
        NewEvent("agent.halted", f"halt:job:{n % 3}", {"target": f"job:{n % 3}", "reason": f"{n}"})
        for n in range(30)
    ]
    signed = sign_many(KEY, drafts)
    assert [s.stream for s in signed] == [d.stream for d in drafts]
    for draft, raw_event in zip(drafts, signed, strict=True):
        verified = verify_message(raw_event.value)
        assert isinstance(verified, Verified), verified
        assert verified.event.event_id == raw_event.event_id
        assert verified.event.body == draft.body
    assert len({s.event_id for s in signed}) == len(drafts)


def test_sign_many_refuses_the_whole_batch_for_one_bad_event() -> None:
    drafts = [
        NewEvent("agent.halted", "halt:*", {"target": "*", "reason": "ok"}),
        NewEvent("agent.halted", "halt:*", {"target": "*", "reason": ""}),
    ]
    with pytest.raises(EventError) as refused:
        sign_many(KEY, drafts)
    assert refused.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED


def test_gateway_receipts_flush_as_receipt_recorded_events() -> None:
    binding = ReceiptBinding(run_id="job-7", event_hash_b64u="B" * 43, nonce="n-1")
    receipts = [
        build_gateway_receipt(
            request=f"request {n}".encode(),
            response=b"response",
            provider="anthropic",
            model="claude",
            binding=binding,
            key=KEY,
        )
        for n in range(3)
    ]
    signed = sign_many(KEY, [receipt_event("job-7", r) for r in receipts])
    for receipt, raw_event in zip(receipts, signed, strict=True):
        verified = verify_message(raw_event.value)
        assert isinstance(verified, Verified), verified
        assert verified.event.event_type == "receipt.recorded"
        assert verified.event.stream == raw_event.stream == "job:job-7"
        # the receipt travels as the exact text its gateway signed
        assert verified.event.body["receipt_envelope_json"].encode() == receipt.to_bytes()


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(st.tuples(attested_bodies, streams, times), max_size=6))
def test_signing_a_batch_is_signing_each_event(
    drawn: list[tuple[dict[str, Any], str, str | None]],
) -> None:
    drafts = [
        NewEvent("policy.attested", stream, body, f"{n:08x}{EVENT_ID[8:]}", occurred_at or AT)
        for n, (body, stream, occurred_at) in enumerate(drawn)
    ]
    one_by_one = [
        outcome(
            sign_event_bytes,
            KEY,
            d.event_type,
            d.stream,
            d.body,
            event_id=d.event_id,
            occurred_at=d.occurred_at,
        )
        for d in drafts
    ]
    refused = [result for result in one_by_one if result[0] != "signed"]
    batch = outcome(sign_events_bytes, KEY, drafts)
    if refused:
        assert batch == refused[0]  # the first invalid event decides, nothing is signed
    else:
        assert batch == ("signed", [result[1] for result in one_by_one])
