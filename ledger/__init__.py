"""claw-ledger domain: events, envelopes, canonical JSON, signing and the rules.

This package imports no Kafka, Postgres or HTTP client; those live at the
edges (``producers``, ``consumers``, ``claw_ledger``).

The names below load their module on first use (PEP 562), so that importing
one light module (``ledger.errors``, ``ledger.topics``) does not load the
event schemas and their validation library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.lazy import lazy_exports

if TYPE_CHECKING:
    from ledger.crypto import KeyPair, did_from_public_key, load_key, save_key
    from ledger.envelope import SignedEnvelope, sign_envelope, verify_envelope
    from ledger.errors import LedgerError, ReasonCode, RejectedError
    from ledger.events import LedgerEvent, build_event, sign_event
    from ledger.roles import Role
    from ledger.types import REGISTRY

#: public name -> the module that defines it
_EXPORTS = {
    "KeyPair": "ledger.crypto",
    "REGISTRY": "ledger.types",
    "LedgerError": "ledger.errors",
    "LedgerEvent": "ledger.events",
    "ReasonCode": "ledger.errors",
    "RejectedError": "ledger.errors",
    "Role": "ledger.roles",
    "SignedEnvelope": "ledger.envelope",
    "build_event": "ledger.events",
    "did_from_public_key": "ledger.crypto",
    "load_key": "ledger.crypto",
    "save_key": "ledger.crypto",
    "sign_envelope": "ledger.envelope",
    "sign_event": "ledger.events",
    "verify_envelope": "ledger.envelope",
}

__all__ = [
    "REGISTRY",
    "KeyPair",
    "LedgerError",
    "LedgerEvent",
    "ReasonCode",
    "RejectedError",
    "Role",
    "SignedEnvelope",
    "build_event",
    "did_from_public_key",
    "load_key",
    "save_key",
    "sign_envelope",
    "sign_event",
    "verify_envelope",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
