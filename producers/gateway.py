"""The gateway helper: sign a receipt for a model call and record it on the ledger.

A gateway (clawproxy or anything in its place) calls :func:`build_gateway_receipt`
with the exact request and response bytes that crossed it, the call's facts
and the binding, then publishes it with :func:`publish_receipt` (or does both
with :func:`record_model_call`). The receipt is a ``gateway_receipt`` envelope
(docs/formats.md §5) signed by the gateway key; the ``receipt.recorded`` event that
carries it is signed by the same key, which must hold the ``gateway`` role.

>>> receipt = build_gateway_receipt(
...     request=request_bytes, response=response_bytes,
...     provider="anthropic", model="claude-sonnet-4", key=gateway_key,
...     binding=ReceiptBinding(run_id=job_id, event_hash_b64u=start_hash, nonce=nonce),
...     tokens_input=812, tokens_output=90, latency_ms=1234)
>>> target = PublishTarget(kafka_bootstrap, "claw.ingress", database_url)
>>> publish_receipt_sync(target, gateway_key, job_id, receipt).check()

A gateway that records many calls flushes its receipts in one bulk publish,
with one ``receipt.recorded`` event per receipt (order kept per job):

>>> async with LedgerProducer(bootstrap, topics.ingress) as producer:
...     await producer.publish_many(
...         gateway_key, [receipt_event(job_id, receipt) for job_id, receipt in pending])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, Unpack

from ledger.crypto import KeyPair
from ledger.envelope import SignedEnvelope
from ledger.receipts import (
    DEFAULT_GATEWAY_ID,
    ReceiptBinding,
    build_receipt_payload,
    sign_receipt,
)
from producers.sdk import NewEvent, blocking

if TYPE_CHECKING:
    from producers.outcome import PublishOutcome
    from producers.publish import PublishTarget

__all__ = [
    "DEFAULT_GATEWAY_ID",
    "ModelCall",
    "ReceiptBinding",
    "build_gateway_receipt",
    "publish_receipt",
    "publish_receipt_sync",
    "receipt_event",
    "receipt_event_body",
    "record_model_call",
]

RECEIPT_EVENT_TYPE = "receipt.recorded"


class ModelCall(TypedDict):
    """One model call as its receipt records it: the exact bytes that crossed the
    gateway, the call's facts and the binding (``gateway_id`` defaults to
    :data:`DEFAULT_GATEWAY_ID`, the counts to 0)."""

    request: bytes
    response: bytes
    provider: str
    model: str
    binding: ReceiptBinding | Mapping[str, Any]
    gateway_id: NotRequired[str]
    tokens_input: NotRequired[int]
    tokens_output: NotRequired[int]
    latency_ms: NotRequired[int]


def build_gateway_receipt(
    *,
    key: KeyPair,
    receipt_id: str | None = None,
    timestamp: str | None = None,
    issued_at: str | None = None,
    **call: Unpack[ModelCall],
) -> SignedEnvelope:
    """Hash the exact bytes, build the receipt payload and sign it with ``key``."""
    payload = build_receipt_payload(receipt_id=receipt_id, timestamp=timestamp, **call)
    return sign_receipt(payload, key, issued_at=issued_at)


def receipt_event_body(job_id: str, receipt: SignedEnvelope | bytes | str) -> dict[str, Any]:
    """The ``receipt.recorded`` body: the job and the receipt's exact envelope text."""
    if isinstance(receipt, SignedEnvelope):
        text = receipt.to_bytes().decode("utf-8")
    elif isinstance(receipt, bytes):
        text = receipt.decode("utf-8")
    else:
        text = receipt
    return {"job_id": job_id, "receipt_envelope_json": text}


def receipt_event(job_id: str, receipt: SignedEnvelope | bytes | str) -> NewEvent:
    """The ``receipt.recorded`` event for :meth:`producers.sdk.LedgerProducer.publish_many`."""
    return NewEvent(RECEIPT_EVENT_TYPE, f"job:{job_id}", receipt_event_body(job_id, receipt))


async def publish_receipt(
    target: PublishTarget,
    key: KeyPair,
    job_id: str,
    receipt: SignedEnvelope | bytes | str,
    *,
    wait: bool = True,
) -> PublishOutcome:
    """Publish ``receipt.recorded`` on ``job:<job_id>``; with ``wait``, the ledger's verdict."""
    from producers.publish import publish_event

    return await publish_event(
        target,
        key,
        RECEIPT_EVENT_TYPE,
        f"job:{job_id}",
        receipt_event_body(job_id, receipt),
        wait=wait,
    )


publish_receipt_sync = blocking(publish_receipt)


def record_model_call(
    target: PublishTarget,
    key: KeyPair,
    *,
    job_id: str,
    wait: bool = True,
    **call: Unpack[ModelCall],
) -> tuple[SignedEnvelope, PublishOutcome]:
    """Build, sign and publish the receipt of one model call (blocking)."""
    receipt = build_gateway_receipt(key=key, **call)
    return receipt, publish_receipt_sync(target, key, job_id, receipt, wait=wait)
