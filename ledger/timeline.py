"""One-line summaries of events for the timeline (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["summarize"]

_FIELDS: dict[str, tuple[str, ...]] = {
    "key.registered": ("name", "roles", "did"),
    "key.revoked": ("did", "reason"),
    "policy.published": ("policy_hash_b64u",),
    "policy.superseded": ("old_policy_hash_b64u", "new_policy_hash_b64u"),
    "policy.revoked": ("policy_hash_b64u", "reason"),
    "token.issued": ("sub", "scope", "mission_id", "policy_hash_b64u", "jti"),
    "token.revoked": ("jti", "reason"),
    "run.manifest_approved": ("job_id", "urm_hash_b64u"),
    "run.started": ("job_id", "cst_jti"),
    "run.completed": ("job_id", "outputs"),
    "agent.halted": ("target", "reason"),
    "agent.resumed": ("target", "reason"),
    "policy.attested": ("ok", "attestation_hash", "findings_count"),
    "policy.drift": ("previous_attestation_hash", "attestation_hash", "ok"),
}


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], Mapping):
            return ",".join(str(v.get("name", "?")) for v in value)
        return ",".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "…"


def summarize(event_type: str, body: Mapping[str, Any]) -> str:
    if event_type == "receipt.recorded":
        try:
            payload = json.loads(body.get("receipt_envelope_json", "{}")).get("payload", {})
        except (ValueError, AttributeError):
            payload = {}
        return (
            f"{payload.get('provider', '?')}/{payload.get('model', '?')} "
            f"in={payload.get('tokens_input', '?')} out={payload.get('tokens_output', '?')} "
            f"run={_short(payload.get('binding', {}).get('run_id', '?'))}"
        )
    fields = _FIELDS.get(event_type) or tuple(body)[:3]
    parts = [f"{name}={_short(body[name])}" for name in fields if body.get(name) is not None]
    return " ".join(parts)
