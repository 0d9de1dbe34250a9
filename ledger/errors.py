"""The one error tree of claw-ledger.

Every rejection carries a stable, machine-readable :class:`ReasonCode`. The
codes are part of the public contract: they are stored in quarantine rows,
printed by ``--json`` output and documented in ``docs/architecture.md``.
Codes never change meaning; new ones are only added.

Hierarchy::

    LedgerError                      base of everything raised on purpose
    ├── ConfigError                  bad settings, missing Java/Maven, bad URL
    ├── ServiceError                 a server could not be started / reached
    │   ├── PublishError             an event could not be handed to Kafka
    │   ├── DemoFailed               a step of ``claw-ledger demo`` did not do what it expects
    │   └── StaleBatchError          a commit lost the race for a partition
    ├── MigrationError               schema newer than code, failed migration
    ├── ControlPlaneTamperedError    a control-plane table does not match its digest
    └── RejectedError                input refused, always with a ReasonCode
        ├── EnvelopeError            clawsig envelope checks (docs/formats.md §2)
        ├── EventError               ledger event checks (role, schema, ids)
        ├── PolicyError              WPC registry (fail closed)
        ├── TokenError               scoped tokens
        ├── ReceiptError             gateway receipts and bindings
        ├── ManifestError            run manifests and the run lifecycle
        ├── BundleError              proof bundles
        ├── ProofError               Merkle inclusion and consistency proofs
        └── CheckpointError          signed notes and tlog checkpoints
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "BundleError",
    "CheckpointError",
    "ConfigError",
    "ControlPlaneTamperedError",
    "DemoFailed",
    "EnvelopeError",
    "EventError",
    "LedgerError",
    "ManifestError",
    "MigrationError",
    "PolicyError",
    "ProofError",
    "PublishError",
    "ReasonCode",
    "ReceiptError",
    "RejectedError",
    "ServiceError",
    "StaleBatchError",
    "TokenError",
    "TopicRewoundError",
    "validation_summary",
]


class ReasonCode(StrEnum):
    """Stable reason codes. The clawsig verifier's own codes come first."""

    OK = "OK"
    # clawsig v1 verifier codes (docs/formats.md §2), same spelling as upstream
    MALFORMED_ENVELOPE = "MALFORMED_ENVELOPE"
    UNKNOWN_ENVELOPE_VERSION = "UNKNOWN_ENVELOPE_VERSION"
    UNKNOWN_HASH_ALGORITHM = "UNKNOWN_HASH_ALGORITHM"
    UNKNOWN_ALGORITHM = "UNKNOWN_ALGORITHM"
    HASH_MISMATCH = "HASH_MISMATCH"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    SCHEMA_VALIDATION_FAILED = "SCHEMA_VALIDATION_FAILED"
    RECEIPT_BINDING_MISMATCH = "RECEIPT_BINDING_MISMATCH"
    PROOF_BUNDLE_AGENT_MISMATCH = "PROOF_BUNDLE_AGENT_MISMATCH"
    INVALID_DID_FORMAT = "INVALID_DID_FORMAT"
    # ingress
    OVERSIZED = "OVERSIZED"
    MALFORMED_JSON = "MALFORMED_JSON"
    UNKNOWN_ENVELOPE_TYPE = "UNKNOWN_ENVELOPE_TYPE"
    #: records removed from Kafka (retention, deletion) before the ledger read them
    RECORDS_LOST = "RECORDS_LOST"
    # ledger events
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    PRODUCER_MISMATCH = "PRODUCER_MISMATCH"
    UNKNOWN_SIGNER = "UNKNOWN_SIGNER"
    SIGNER_REVOKED = "SIGNER_REVOKED"
    ROLE_NOT_ALLOWED = "ROLE_NOT_ALLOWED"
    DUPLICATE_EVENT_CONFLICT = "DUPLICATE_EVENT_CONFLICT"
    KEY_ALREADY_REGISTERED = "KEY_ALREADY_REGISTERED"
    TRUST_ROOT_EXISTS = "TRUST_ROOT_EXISTS"
    # WPC registry
    WPC_INVALID = "WPC_INVALID"
    WPC_UNKNOWN = "WPC_UNKNOWN"
    WPC_REVOKED = "WPC_REVOKED"
    WPC_SUPERSEDED = "WPC_SUPERSEDED"
    WPC_HASH_MISMATCH = "WPC_HASH_MISMATCH"
    WPC_ALREADY_PUBLISHED = "WPC_ALREADY_PUBLISHED"
    MALFORMED_POLICY_HASH = "MALFORMED_POLICY_HASH"
    # scoped tokens
    TOKEN_MALFORMED = "TOKEN_MALFORMED"
    TOKEN_SIGNATURE_INVALID = "TOKEN_SIGNATURE_INVALID"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    TOKEN_UNKNOWN = "TOKEN_UNKNOWN"
    TOKEN_TTL_EXCEEDED = "TOKEN_TTL_EXCEEDED"
    TOKEN_BAD_LIFETIME = "TOKEN_BAD_LIFETIME"
    TOKEN_EMPTY_SCOPE = "TOKEN_EMPTY_SCOPE"
    TOKEN_SCOPE_HASH_MISMATCH = "TOKEN_SCOPE_HASH_MISMATCH"
    TOKEN_ALREADY_ISSUED = "TOKEN_ALREADY_ISSUED"
    # run manifests and lifecycle
    URM_INVALID = "URM_INVALID"
    URM_NO_APPROVALS = "URM_NO_APPROVALS"
    URM_SELF_APPROVAL = "URM_SELF_APPROVAL"
    URM_APPROVER_NOT_ALLOWED = "URM_APPROVER_NOT_ALLOWED"
    URM_APPROVAL_INVALID = "URM_APPROVAL_INVALID"
    JOB_UNKNOWN = "JOB_UNKNOWN"
    JOB_ALREADY_APPROVED = "JOB_ALREADY_APPROVED"
    JOB_BINDING_MISMATCH = "JOB_BINDING_MISMATCH"
    POLICY_PIN_MISMATCH = "POLICY_PIN_MISMATCH"
    RUN_NOT_STARTED = "RUN_NOT_STARTED"
    RUN_ALREADY_STARTED = "RUN_ALREADY_STARTED"
    OUTPUT_HASH_INVALID = "OUTPUT_HASH_INVALID"
    RUN_ALREADY_COMPLETED = "RUN_ALREADY_COMPLETED"
    RECEIPT_ALREADY_RECORDED = "RECEIPT_ALREADY_RECORDED"
    RECEIPT_MISSING = "RECEIPT_MISSING"
    # halt
    AGENT_HALTED = "AGENT_HALTED"
    HALT_NOT_ACTIVE = "HALT_NOT_ACTIVE"
    HALT_POLICY_NOT_HALT = "HALT_POLICY_NOT_HALT"
    RESUME_POLICY_REQUIRED = "RESUME_POLICY_REQUIRED"
    RESUME_POLICY_NOT_ACTIVE = "RESUME_POLICY_NOT_ACTIVE"
    RESUME_POLICY_IS_HALT = "RESUME_POLICY_IS_HALT"
    RESUME_POLICY_PIN_MISMATCH = "RESUME_POLICY_PIN_MISMATCH"
    # shadow policies (ledger/types/shadows.py, ADR 0023)
    SHADOW_NOT_ACTIVE = "SHADOW_NOT_ACTIVE"
    # authorize (ledger/authorize.py, ADR 0015): why a call was refused before it ran
    TOKEN_ISSUER_NOT_ALLOWED = "TOKEN_ISSUER_NOT_ALLOWED"
    TOOL_NOT_ALLOWED = "TOOL_NOT_ALLOWED"
    MODEL_NOT_ALLOWED = "MODEL_NOT_ALLOWED"
    NONCE_REPLAYED = "NONCE_REPLAYED"
    LEDGER_UNAVAILABLE = "LEDGER_UNAVAILABLE"
    STATE_STALE = "STATE_STALE"
    # transparency log (ADR 0011, docs/transparency.md)
    CHECKPOINT_MALFORMED = "CHECKPOINT_MALFORMED"
    CHECKPOINT_SIGNATURE_INVALID = "CHECKPOINT_SIGNATURE_INVALID"
    CHECKPOINT_KEY_UNKNOWN = "CHECKPOINT_KEY_UNKNOWN"
    CHECKPOINT_ORIGIN_MISMATCH = "CHECKPOINT_ORIGIN_MISMATCH"
    INCLUSION_PROOF_INVALID = "INCLUSION_PROOF_INVALID"
    CONSISTENCY_PROOF_INVALID = "CONSISTENCY_PROOF_INVALID"
    LEAF_MALFORMED = "LEAF_MALFORMED"
    # replay (claw-ledger replay, ledger/replay.py): why a verified replay stopped
    CHAIN_BROKEN = "CHAIN_BROKEN"
    REPLAY_GAP = "REPLAY_GAP"
    TRUST_ROOT_MISMATCH = "TRUST_ROOT_MISMATCH"
    # sealed proof bundles and Trust Pulse (ADR 0019, docs/formats.md §6)
    BUNDLE_RECEIPT_MISSING = "BUNDLE_RECEIPT_MISSING"
    BUNDLE_NOT_BOUND = "BUNDLE_NOT_BOUND"
    BUNDLE_URM_MISMATCH = "BUNDLE_URM_MISMATCH"
    BUNDLE_WPC_MISMATCH = "BUNDLE_WPC_MISMATCH"
    BUNDLE_SCOPE_MISMATCH = "BUNDLE_SCOPE_MISMATCH"
    BUNDLE_SIGNER_NOT_ALLOWED = "BUNDLE_SIGNER_NOT_ALLOWED"
    BUNDLE_EVENTS_ARCHIVED = "BUNDLE_EVENTS_ARCHIVED"
    PULSE_ID_MISMATCH = "PULSE_ID_MISMATCH"
    # HTTP API (claw-ledger serve, ADR 0018): why a request was refused
    API_KEY_MISSING = "API_KEY_MISSING"
    API_KEY_INVALID = "API_KEY_INVALID"
    API_ROLE_FORBIDDEN = "API_ROLE_FORBIDDEN"
    API_BAD_PARAMETER = "API_BAD_PARAMETER"
    API_BODY_TOO_LARGE = "API_BODY_TOO_LARGE"
    API_HEADERS_TOO_LARGE = "API_HEADERS_TOO_LARGE"
    API_NOT_FOUND = "API_NOT_FOUND"
    API_EVENT_ARCHIVED = "API_EVENT_ARCHIVED"
    API_METHOD_NOT_ALLOWED = "API_METHOD_NOT_ALLOWED"
    API_NOT_ENABLED = "API_NOT_ENABLED"
    API_UNAVAILABLE = "API_UNAVAILABLE"
    API_NOT_READY = "API_NOT_READY"
    # internal, never expected: kept so that a processor bug quarantines instead of crashing
    INTERNAL_ERROR = "INTERNAL_ERROR"


class LedgerError(Exception):
    """Base class of every error claw-ledger raises on purpose."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class ConfigError(LedgerError):
    """Settings are missing or wrong; the message says which and how to fix them."""


class ServiceError(LedgerError):
    """A server (Kafka, Postgres) could not be started, reached or stopped."""


class PublishError(ServiceError):
    """Publishing failed before any verdict: no producer could be made, or Kafka did not
    take the event. (A refused event is not this: it is quarantined, a RejectedError.)"""


class DemoFailed(ServiceError):
    """A demo step exited with another code than the scenario expects: the running ledger
    (its servers, its processor) did not behave as the demo needs. The message holds the
    command and its stderr."""


class StaleBatchError(ServiceError):
    """The store refused a batch commit and wrote nothing: another worker of the
    group moved a partition's position (or recorded one of its event ids), or
    another lane or worker changed a control-plane row the batch writes (ADR
    0029), since this batch was planned. The processor reloads its state and
    positions and plans the batch again; it is a race, not bad input."""


class MigrationError(LedgerError):
    """The database schema cannot be brought to the version this code needs."""


class ControlPlaneTamperedError(LedgerError):
    """A control-plane table (keys, policies, tokens, jobs, halts) no longer sums to
    the digest the processor kept while writing it: a row was changed, added or
    removed behind the ledger's back. The processor refuses to obey it (ADR 0014)."""

    def __init__(self, tables: dict[str, tuple[str, str]]) -> None:
        names = ", ".join(sorted(tables))
        super().__init__(
            f"control-plane table(s) {names} changed outside the ledger: the rows no longer"
            " match the digest the processor kept while writing them; refusing to start",
            hint="do not run a processor on this database. Run `claw-ledger audit` to see"
            " what changed, then restore the tables: replay the ledger into a fresh database",
        )
        #: table -> (stored digest, digest of the rows), as 64 hex digits
        self.tables = tables


class TopicRewoundError(LedgerError):
    """A Kafka partition ends below the offset the ledger has read up to: its topic
    was deleted and created again (or truncated), so its offsets start over. The
    ledger's rows hold those offsets already; the processor refuses to read on,
    since every record below its old position would be skipped as read (ADR 0033)."""


class RejectedError(LedgerError):
    """Input was refused. ``code`` is the stable reason; ``detail`` is for humans."""

    def __init__(self, code: ReasonCode, detail: str, *, hint: str | None = None) -> None:
        super().__init__(f"{code.value}: {detail}", hint=hint)
        self.code = code
        self.detail = detail


class EnvelopeError(RejectedError):
    """A clawsig envelope failed one of the numbered verification steps."""


class EventError(RejectedError):
    """A ledger event failed a ledger-level check (registry, role, schema, ids)."""


class PolicyError(RejectedError):
    """A Work Policy Contract is unknown, revoked, invalid or does not match its hash."""


class TokenError(RejectedError):
    """A scoped token is malformed, expired, revoked or does not match its binding."""


class ReceiptError(RejectedError):
    """A gateway receipt is invalid or not bound to the run it claims."""


class ManifestError(RejectedError):
    """A run manifest or run lifecycle event is invalid."""


class BundleError(RejectedError):
    """A proof bundle failed verification."""


class ProofError(RejectedError):
    """A Merkle inclusion or consistency proof does not verify."""


class CheckpointError(RejectedError):
    """A signed note or checkpoint is malformed, unsigned by a trusted key, or forged."""


def validation_summary(exc: ValidationError, root: str) -> str:
    """The first five schema errors, ``path: message``; ``root`` names a document-wide one."""
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or root
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
