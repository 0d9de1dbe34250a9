"""claw-ledger domain: events, envelopes, canonical JSON, signing and the rules.

This package imports no Kafka, Postgres or HTTP client; those live at the
edges (``producers``, ``consumers``, ``claw_ledger``).
"""

from ledger.crypto import KeyPair, did_from_public_key, load_key, save_key
from ledger.envelope import SignedEnvelope, sign_envelope, verify_envelope
from ledger.errors import LedgerError, ReasonCode, RejectedError
from ledger.events import LedgerEvent, build_event, sign_event
from ledger.roles import Role
from ledger.types import REGISTRY

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
