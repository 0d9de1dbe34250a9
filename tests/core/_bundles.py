"""Proof bundles built from fixed keys, correct or broken in exactly one way.

Every broken bundle is re-signed after the change (unless the break is the
signature itself), so that only the step under test can fail.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from ledger.bundles import chain_entry, sign_document_order
from ledger.crypto import KeyPair
from ledger.receipts import sign_receipt

from ._helpers import FIXED_TS, key, receipt_payload

AGENT = key(21, "agent")
GATEWAY = key(22, "gateway")
OUTSIDER = key(23, "outsider")
RUN_ID = "run-offline-1"
#: the chain's event types: one run start, then two model calls
EVENT_TYPES = ("run.started", "llm_call", "llm_call")


def chain(run_id: str = RUN_ID, types: Sequence[str] = EVENT_TYPES) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for index, event_type in enumerate(types):
        entries.append(
            chain_entry(
                event_id=f"evt-{index}",
                run_id=run_id,
                event_type=event_type,
                timestamp=FIXED_TS,
                payload_hash_b64u=f"{index:0>43}",
                prev_hash_b64u=entries[-1]["event_hash_b64u"] if entries else None,
            )
        )
    return entries


def receipt(event_hash: str, *, run_id: str = RUN_ID, n: int = 0) -> dict[str, Any]:
    payload = receipt_payload(
        {"run_id": run_id, "event_hash_b64u": event_hash, "nonce": f"nonce-{n}"},
        request=f"request {n}".encode(),
        response=f"response {n}".encode(),
        gateway_id="gw-offline",
        receipt_id=f"rcpt-{n}",
        timestamp=FIXED_TS,
    )
    return sign_receipt(payload, GATEWAY, issued_at=FIXED_TS).to_dict()


def receipts_for(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One receipt for each model call of ``entries``."""
    return [
        receipt(entry["event_hash_b64u"], n=index)
        for index, entry in enumerate(entries)
        if entry["event_type"] == "llm_call"
    ]


def sign_bundle(
    entries: Sequence[dict[str, Any]],
    receipts: Sequence[dict[str, Any]],
    *,
    signer: KeyPair = AGENT,
    agent_did: str | None = None,
) -> dict[str, Any]:
    payload = {
        "bundle_version": "1",
        "bundle_id": "bundle-offline-1",
        "agent_did": agent_did or signer.did,
        "event_chain": [dict(e) for e in entries],
        "receipts": [dict(r) for r in receipts],
    }
    return sign_document_order("proof_bundle", payload, signer, issued_at=FIXED_TS).to_dict()


def good_bundle() -> dict[str, Any]:
    entries = chain()
    return sign_bundle(entries, receipts_for(entries))


def resigned(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The good bundle with ``edit`` applied to its payload, then signed again by the agent."""
    payload = copy.deepcopy(good_bundle()["payload"])
    edit(payload)
    return sign_bundle(payload["event_chain"], payload["receipts"])


def missing_receipt() -> dict[str, Any]:
    """The second model call's receipt is left out."""
    entries = chain()
    return sign_bundle(entries, receipts_for(entries)[:1])


def receipt_of_another_run() -> dict[str, Any]:
    entries = chain()
    receipts = receipts_for(entries)
    receipts[1] = receipt(entries[2]["event_hash_b64u"], run_id="run-elsewhere", n=9)
    return sign_bundle(entries, receipts)


def broken_link() -> dict[str, Any]:
    """The last entry's prev_hash names no entry; its own hash is recomputed, so only
    the link breaks."""
    entries = chain()
    last = entries[2]
    entries[2] = chain_entry(
        event_id=last["event_id"],
        run_id=last["run_id"],
        event_type=last["event_type"],
        timestamp=last["timestamp"],
        payload_hash_b64u=last["payload_hash_b64u"],
        prev_hash_b64u="A" * 43,
    )
    return sign_bundle(entries, receipts_for(entries))


def signed_by_outsider() -> dict[str, Any]:
    """Names the agent, signed by another key."""
    entries = chain()
    return sign_bundle(entries, receipts_for(entries), signer=OUTSIDER, agent_did=AGENT.did)
