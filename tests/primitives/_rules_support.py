"""What the rule tests (``test_rules*.py``) share: a second WPC, and the event bodies
and refusals that more than one family of rules builds on (a receipt bound to the
job, a refused token issue, a run start and its refusal, a run completion)."""

from __future__ import annotations

from typing import Any

from ledger.errors import ReasonCode
from ledger.receipts import sign_receipt
from ledger.verify import Accepted, Rejected
from ledger.wpc import policy_hash_b64u
from tests.core._helpers import receipt_payload

from ._support import NOW_TS, WPC_EXAMPLE, Ledger, ts

OTHER_WPC = dict(WPC_EXAMPLE, issuer="platform-team")


def _receipt_body(
    ledger: Ledger, job_id: str = "job-1", signer: Any = None, **binding: Any
) -> dict[str, Any]:
    job = ledger.state.jobs[job_id]
    bound = {
        "run_id": job["run_id"],
        "event_hash_b64u": job["event_chain"][-1]["event_hash_b64u"],
        "nonce": "nonce-1",
        "policy_hash": job["wpc_hash_b64u"],
        "token_scope_hash_b64u": job["token_scope_hash_b64u"],
    }
    bound.update(binding)
    payload = receipt_payload(bound, timestamp=ts(90))
    envelope = sign_receipt(payload, signer or ledger.keys.gateway, issued_at=ts(90))
    return {"job_id": job_id, "receipt_envelope_json": envelope.to_bytes().decode()}


def _issue_refused(ledger: Ledger, body: dict[str, Any], signer: Any = None) -> ReasonCode:
    refused = ledger.refused(
        signer or ledger.keys.issuer, "token.issued", f"token:{body['jti']}", body
    )
    return refused.code


def _start(ledger: Ledger, job_id: str, jti: str, *, urm: str | None = None) -> dict[str, Any]:
    job = ledger.state.jobs.get(job_id)
    return {
        "job_id": job_id,
        "urm_hash_b64u": urm or (job["urm_hash_b64u"] if job else policy_hash_b64u(WPC_EXAMPLE)),
        "cst_jti": jti,
    }


def _start_refused(ledger: Ledger, body: dict[str, Any], at: str = NOW_TS) -> ReasonCode:
    return ledger.refused(
        ledger.keys.runtime, "run.started", f"job:{body['job_id']}", body, at=at
    ).code


def _complete(
    ledger: Ledger, outputs: list[dict[str, str]], job_id: str = "job-1"
) -> Accepted | Rejected:
    return ledger.submit(
        ledger.keys.runtime,
        "run.completed",
        f"job:{job_id}",
        {"job_id": job_id, "outputs": outputs},
        at=ts(120),
    )
