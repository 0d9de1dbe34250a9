"""One-line timeline summaries (ledger.timeline.summarize)."""

from __future__ import annotations

import json

from ledger.timeline import summarize

H = "OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4"


def test_key_registered_summary() -> None:
    body = {
        "did": "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw",
        "name": "root",
        "roles": ["admin", "operator"],
    }
    assert summarize("key.registered", body) == (
        "name=root roles=admin,operator did=did:key:z6MktwupdmLXV…"
    )


def test_long_values_are_cut_to_24_characters() -> None:
    text = summarize("policy.published", {"policy_hash_b64u": H, "wpc_envelope_json": "{}"})
    assert text == f"policy_hash_b64u={H[:21]}…"
    assert len(text.split("=", 1)[1]) == 22


def test_missing_and_null_fields_are_left_out() -> None:
    body = {
        "sub": "agent:alpha",
        "scope": ["tools:read", "proxy:call"],
        "mission_id": None,
        "jti": "jti-1",
    }
    assert (
        summarize("token.issued", body) == "sub=agent:alpha scope=tools:read,proxy:call jti=jti-1"
    )


def test_outputs_are_listed_by_name() -> None:
    body = {"job_id": "j1", "outputs": [{"name": "report.md", "sha256": "0" * 64}, {"sha256": ""}]}
    assert summarize("run.completed", body) == "job_id=j1 outputs=report.md,?"


def test_false_is_shown() -> None:
    body = {"ok": False, "attestation_hash": "sha256:ab", "findings_count": 0}
    assert (
        summarize("policy.attested", body) == "ok=False attestation_hash=sha256:ab findings_count=0"
    )


def test_unknown_type_shows_its_first_three_fields() -> None:
    assert summarize("x.y", {"a": 1, "b": "two", "c": [3], "d": 4}) == "a=1 b=two c=3"


def test_receipt_recorded_summary_from_the_real_body_shape() -> None:
    receipt = {
        "payload": {
            "provider": "anthropic",
            "model": "claude-test",
            "tokens_input": 10,
            "tokens_output": 20,
            "binding": {"run_id": "run_1"},
        }
    }
    body = {"job_id": "j1", "receipt_envelope_json": json.dumps(receipt)}
    assert summarize("receipt.recorded", body) == "anthropic/claude-test in=10 out=20 run=run_1"
