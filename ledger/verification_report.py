"""The verdict of an offline verification: numbered checks, the first failure decides.

:class:`Steps` collects the checks of one input in the order they run;
:class:`VerificationResult` is the frozen outcome every verifier of
:mod:`ledger.offline_verify` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from ledger.bundles import BUNDLE_ENVELOPE_TYPE
from ledger.canonical import field_values
from ledger.errors import ReasonCode
from ledger.events import EVENT_ENVELOPE_TYPE
from ledger.receipts import RECEIPT_ENVELOPE_TYPE
from ledger.wpc import WPC_ENVELOPE_TYPE

__all__ = ["Check", "Failure", "InputKind", "Steps", "VerificationResult"]


class InputKind(StrEnum):
    PROOF_BUNDLE = BUNDLE_ENVELOPE_TYPE
    LEDGER_EVENT = EVENT_ENVELOPE_TYPE
    WPC = WPC_ENVELOPE_TYPE
    GATEWAY_RECEIPT = RECEIPT_ENVELOPE_TYPE
    #: JSON of no type this ledger knows; judged as an envelope, so it fails
    ENVELOPE = "envelope"
    #: a signed checkpoint, bare or in a proof file
    CHECKPOINT = "checkpoint"
    #: neither JSON nor a signed note
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Check:
    """One step's outcome: ``code`` is ``OK`` or the step's reason code."""

    step: int
    name: str
    ok: bool
    code: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return field_values(self)


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The verdict: valid only when there are checks and every one passed."""

    kind: InputKind
    checks: tuple[Check, ...]
    #: what was verified (ids, signer, sizes), for the report; empty on failure
    facts: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failure(self) -> Check | None:
        return next((check for check in self.checks if not check.ok), None)

    @property
    def reason_code(self) -> str:
        failed = self.failure
        if failed is not None:
            return failed.code
        return ReasonCode.OK.value if self.checks else ReasonCode.INTERNAL_ERROR.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "reason_code": self.reason_code,
            "kind": self.kind.value,
            "checks": [check.to_dict() for check in self.checks],
            "facts": dict(self.facts),
        }


class Failure(Protocol):
    @property
    def code(self) -> ReasonCode: ...

    @property
    def detail(self) -> str: ...


class Steps:
    """Collects checks, numbering them in the order they run."""

    def __init__(self, kind: InputKind) -> None:
        self.kind = kind
        self.checks: list[Check] = []

    def ok(self, name: str, detail: str = "") -> None:
        self.checks.append(Check(len(self.checks) + 1, name, True, ReasonCode.OK.value, detail))

    def fail(self, name: str, code: ReasonCode | str, detail: str) -> None:
        self.checks.append(Check(len(self.checks) + 1, name, False, str(code), detail))

    def table(
        self, names: Sequence[str], failed_step: int | None = None, exc: Failure | None = None
    ) -> None:
        """Steps 1.. of ``names``: all pass, or those before ``failed_step`` pass and it fails."""
        last = len(names) if failed_step is None else failed_step - 1
        for name in names[:last]:
            self.ok(name)
        if failed_step is not None and exc is not None:
            self.fail(names[failed_step - 1], exc.code, exc.detail)

    def result(self, facts: Mapping[str, Any] | None = None) -> VerificationResult:
        shown = facts if facts is not None and all(c.ok for c in self.checks) else {}
        return VerificationResult(self.kind, tuple(self.checks), MappingProxyType(dict(shown)))
