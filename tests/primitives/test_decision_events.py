"""``call.authorized`` / ``call.denied`` through the processor's pure pipeline."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ledger.authorize import Action, CallRequest, DecisionView, decide_call
from ledger.authorize import AuthorizeSettings as Settings
from ledger.crypto import KeyPair
from ledger.errors import ReasonCode
from ledger.verify import Rejected
from tests.primitives._support import NOW, Ledger


def _with_authorizer() -> tuple[Ledger, KeyPair]:
    ledger = Ledger()
    return ledger, ledger.keys.authorizer


def _denial() -> dict[str, Any]:
    ledger = Ledger()
    view = DecisionView.of(ledger.state, synced_at=NOW)
    request = CallRequest("a.b.c", "job-7", Action.for_model("anthropic", "claude"), "n")
    return decide_call(view, request, NOW, Settings()).event_body()


def test_a_decision_is_projected_into_decisions() -> None:
    ledger, authorizer = _with_authorizer()
    body = _denial()
    assert body["reason_code"] == ReasonCode.TOKEN_MALFORMED and body["token_jti"] is None
    outcome = ledger.ok(authorizer, "call.denied", "job:job-7", body, event_id=body["decision_id"])
    (row,) = outcome.rows
    assert row.table == "decisions" and row.values["decision_id"] == body["decision_id"]
    assert row.values["allowed"] is False and row.values["signer_did"] == authorizer.did
    assert row.values["action"] == {"kind": "model", "provider": "anthropic", "model": "claude"}


@pytest.mark.parametrize(
    ("event_type", "change", "code"),
    [
        ("call.denied", {}, None),
        ("call.authorized", {}, ReasonCode.SCHEMA_VALIDATION_FAILED),
        ("call.denied", {"reason_code": "OK"}, ReasonCode.SCHEMA_VALIDATION_FAILED),
        ("call.denied", {"reason_code": "NOT_A_CODE"}, ReasonCode.SCHEMA_VALIDATION_FAILED),
        ("call.denied", {"halt_target": "*"}, ReasonCode.SCHEMA_VALIDATION_FAILED),
        ("call.denied", {"action": {"kind": "tool"}}, ReasonCode.SCHEMA_VALIDATION_FAILED),
    ],
)
def test_the_rule_checks_the_shape(
    event_type: str, change: dict[str, Any], code: ReasonCode | None
) -> None:
    ledger, authorizer = _with_authorizer()
    body = _denial() | change
    outcome = ledger.submit(authorizer, event_type, "job:job-7", body, event_id=body["decision_id"])
    assert (outcome.code if isinstance(outcome, Rejected) else None) == code


def test_the_event_id_is_the_decision_id_and_only_an_authorizer_signs() -> None:
    ledger, authorizer = _with_authorizer()
    body = _denial()
    other = str(uuid.uuid4())
    refused = ledger.submit(authorizer, "call.denied", "job:job-7", body, event_id=other)
    assert isinstance(refused, Rejected) and refused.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    wrong_stream = ledger.submit(
        authorizer, "call.denied", "job:job-8", body, event_id=body["decision_id"]
    )
    assert isinstance(wrong_stream, Rejected)
    runtime = ledger.keys.runtime
    by_runtime = ledger.submit(
        runtime, "call.denied", "job:job-7", body, event_id=body["decision_id"]
    )
    assert isinstance(by_runtime, Rejected) and by_runtime.code is ReasonCode.ROLE_NOT_ALLOWED
