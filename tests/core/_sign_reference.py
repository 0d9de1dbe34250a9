"""The signing tests' fixed key, event id and time, and the reference signing path."""

from __future__ import annotations

from typing import Any

from ledger.crypto import KeyPair
from ledger.events import build_event, sign_event

KEY = KeyPair.from_seed(bytes(range(1, 33)), "runtime")
EVENT_ID = "0b0c8f5e-2f1a-4c3d-9e8f-7a6b5c4d3e2f"
AT = "2026-02-12T00:00:00.000Z"


def reference(event_type: str, stream: str, body: Any, **kw: Any) -> tuple[str, bytes]:
    event = build_event(
        event_type,
        stream,
        body,
        kw.get("key", KEY),
        event_id=kw.get("event_id"),
        occurred_at=kw.get("occurred_at"),
    )
    envelope = sign_event(
        event, kw.get("key", KEY), issued_at=kw.get("issued_at") or event.occurred_at
    )
    return event.event_id, envelope.to_bytes()
