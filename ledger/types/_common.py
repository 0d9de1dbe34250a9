"""What the event-type families share: body field types, rule helpers, summaries.

Projection tables (``migrations/0002_claw_primitives.sql``); in each, the
state record and the row values are the same JSON-able dict:

* ``policies`` keyed by ``policy_hash_b64u``, ``tokens`` by ``jti``,
  ``jobs`` by ``job_id``, ``halts`` by ``target`` (loaded into the state);
* ``receipts`` keyed by ``receipt_id`` (written only; the rules keep the
  receipt ids of a job in its ``jobs`` row);
* ``keys`` keyed by ``did`` (:class:`~ledger.state.KeyRecord`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar, cast

from pydantic import BeforeValidator

from ledger.errors import EventError, PolicyError, ReasonCode, RejectedError
from ledger.registry import (
    ApplyFn,
    CheckFn,
    EventBody,
    EventTypeSpec,
    Lane,
    RuleSettings,
    SignerBootstrap,
    SummaryFn,
)
from ledger.roles import Role
from ledger.state import EventContext, LedgerState, ProjectionRow
from ledger.wpc import check_policy_hash

ACTIVE = "active"
REVOKED = "revoked"
SUPERSEDED = "superseded"

#: A job id: no whitespace, short enough for a ``job:<id>`` stream.
JOB_ID = r"^\S{1,300}$"
#: A token id, as allowed in a ``token:<jti>`` stream.
JTI = r"^[A-Za-z0-9._:-]{1,200}$"

_Item = TypeVar("_Item")
_Body = TypeVar("_Body", bound=EventBody)


def _array_to_tuple(value: Any) -> Any:
    # Bodies are validated strictly from the parsed JSON: strict validation of
    # Python input takes only a tuple, and a JSON array arrives as a list.
    return tuple(value) if type(value) is list else value


#: A JSON array held as a tuple (bodies are frozen).
Array = Annotated[tuple[_Item, ...], BeforeValidator(_array_to_tuple)]


# --- specs ------------------------------------------------------------------------


def spec(
    event_type: str,
    body: type[EventBody],
    stream: str,
    roles: str,
    writes: str,
    check: CheckFn,
    apply: ApplyFn,
    summary: str | SummaryFn,
    signer_bootstrap: SignerBootstrap | None = None,
    lane: Lane = "ingress",
) -> EventTypeSpec:
    """One row of a family's ``SPECS`` table, its fields in the order they are written.

    ``stream`` is ``<kind>:<id>`` as the docs show it; ``roles`` and ``writes``
    are space-separated role values and projection tables; ``summary`` is either
    the body fields the timeline shows (space-separated) or a summary function.
    The description is the first line of the body's docstring, without its period.
    """
    stream_kind, _, stream_id = stream.partition(":")
    doc = (body.__doc__ or "").strip().splitlines()
    return EventTypeSpec(
        event_type=event_type,
        body=body,
        stream_kind=stream_kind,
        stream_id=stream_id,
        roles=frozenset(Role(name) for name in roles.split()),
        check=check,
        apply=apply,
        writes=tuple(writes.split()),
        description=doc[0].removesuffix(".") if doc else "",
        summary=fields_summary(*summary.split()) if isinstance(summary, str) else summary,
        signer_bootstrap=signer_bootstrap,
        lane=lane,
    )


# --- rules ------------------------------------------------------------------------


def body_of(ctx: EventContext, body_type: type[_Body]) -> _Body:
    """The event's body, typed: the registry hands a rule only bodies of its own type."""
    body = ctx.body
    assert isinstance(body, body_type)
    return body


def mark_revoked(record: dict[str, Any], ctx: EventContext, reason: str) -> None:
    """A registry record (policy, token) is revoked by this event's signer."""
    record.update(
        status=REVOKED,
        revoked_reason=reason,
        revoked_by=ctx.signer,
        revoked_at=ctx.event.occurred_at,
    )


def stamp(ctx: EventContext, verb: str) -> dict[str, Any]:
    """Who did ``verb`` with this event, when, and which event: ``{verb}_by``, ``{verb}_at``,
    ``{verb}_event_id``."""
    return {
        f"{verb}_by": ctx.signer,
        f"{verb}_at": ctx.event.occurred_at,
        f"{verb}_event_id": ctx.event.event_id,
    }


def mark_ended(record: dict[str, Any], ctx: EventContext, verb: str, reason: str) -> None:
    """An active record (a halt, a shadow policy) ends with this event: why, who, when, which.

    Fields are named for the verb: ``resumed_reason``, ``resumed_by``, ``resumed_at``,
    ``resumed_event_id``.
    """
    record.update({"active": False, f"{verb}_reason": reason, **stamp(ctx, verb)})


class _ReasonedBody(Protocol):
    reason: str


@dataclass(frozen=True, slots=True)
class _RecordRule:
    """A rule on the record of ``table`` that the body names by its ``key`` field,
    on stream ``<stream_kind>:<key>``."""

    table: str
    key: str
    stream_kind: str

    def _named(self, state: LedgerState, ctx: EventContext) -> tuple[Any, dict[str, Any] | None]:
        """The key's value and its record (``None``: unknown), once the stream is the record's."""
        value = getattr(ctx.body, self.key)
        require_stream(ctx, f"{self.stream_kind}:{value}")
        return value, getattr(state, self.table).get(value)

    def _record(self, state: LedgerState, ctx: EventContext) -> dict[str, Any]:
        """The record, which the check found: the one to update."""
        record: dict[str, Any] = getattr(state, self.table)[getattr(ctx.body, self.key)]
        return record


@dataclass(frozen=True, slots=True)
class Revocation(_RecordRule):
    """The rule of a ``*.revoked`` event for a registry of ``table`` (policies, tokens).

    The record must exist and not be revoked already (``unknown`` and ``revoked`` codes).
    """

    error: type[RejectedError]
    unknown: ReasonCode
    revoked: ReasonCode

    def check(self, state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
        value, record = self._named(state, ctx)
        if record is None:
            raise self.error(self.unknown, f"no {self.stream_kind} {value} on the ledger")
        if record["status"] == REVOKED:
            raise self.error(self.revoked, f"{self.stream_kind} {value} is already revoked")

    def apply(
        self, state: LedgerState, ctx: EventContext, settings: RuleSettings, /
    ) -> list[ProjectionRow]:
        record = self._record(state, ctx)
        mark_revoked(record, ctx, cast("_ReasonedBody", ctx.body).reason)
        return [row(self.table, self.key, record)]


@dataclass(frozen=True, slots=True)
class Ending(_RecordRule):
    """The rule of an event that ends the active record of ``table`` (halts, shadows).

    The record must be active, else ``inactive`` with ``detail`` (formatted with
    the key's value). :meth:`end` marks it ended under ``verb`` (:func:`mark_ended`).
    """

    verb: str
    inactive: ReasonCode
    detail: str

    def check(self, state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
        value, record = self._named(state, ctx)
        if record is None or not record["active"]:
            raise EventError(self.inactive, self.detail.format(value))

    def open(self, ctx: EventContext, verb: str, reason: str, **fields: Any) -> dict[str, Any]:
        """A new active record: ``fields`` (its key first), ``reason``, who ``verb``-ed it
        (:func:`stamp`), and the fields :meth:`end` fills, empty until then."""
        ended = (f"{self.verb}_reason", *stamp(ctx, self.verb))
        return {
            **fields,
            "active": True,
            "reason": reason,
            **stamp(ctx, verb),
            **dict.fromkeys(ended),
        }

    def end(self, state: LedgerState, ctx: EventContext) -> dict[str, Any]:
        """The record, marked ended by this event (the caller writes its row)."""
        record = self._record(state, ctx)
        mark_ended(record, ctx, self.verb, cast("_ReasonedBody", ctx.body).reason)
        return record

    def apply(
        self, state: LedgerState, ctx: EventContext, settings: RuleSettings, /
    ) -> list[ProjectionRow]:
        return [row(self.table, self.key, self.end(state, ctx))]


@dataclass(frozen=True, slots=True)
class Known:
    """The records of ``table`` by key, where an unknown key refuses the event:
    ``error(unknown, detail formatted with the key, hint=hint)``."""

    table: str
    error: type[RejectedError]
    unknown: ReasonCode
    detail: str
    hint: str | None = None

    def require(self, state: LedgerState, key: str) -> dict[str, Any]:
        record: dict[str, Any] | None = getattr(state, self.table).get(key)
        if record is None:
            raise self.error(self.unknown, self.detail.format(key), hint=self.hint)
        return record


def no_check(state: LedgerState, ctx: EventContext, settings: RuleSettings, /) -> None:
    return None


def no_apply(
    state: LedgerState, ctx: EventContext, settings: RuleSettings, /
) -> list[ProjectionRow]:
    return []


_SCALAR_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def copy_json(value: Any) -> Any:
    """A copy of JSON-shaped data (dicts, lists, scalars): what rows hold.

    ``copy.deepcopy`` did the same at many times the cost, once per event;
    scalars are shared, since they are immutable.
    """
    if type(value) in _SCALAR_TYPES:
        return value
    if type(value) is dict:
        # a record is mostly scalars: the C copy, then only the nested values again
        out = value.copy()
        for k, v in out.items():
            if type(v) not in _SCALAR_TYPES:
                out[k] = copy_json(v)  # an existing key: the dict does not resize
        return out
    if isinstance(value, dict):
        return {k: v if type(v) in _SCALAR_TYPES else copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _SCALAR_TYPES else copy_json(v) for v in value]
    return value


def row(table: str, key: str, record: Mapping[str, Any]) -> ProjectionRow:
    values = record if isinstance(record, dict) else dict(record)
    return ProjectionRow(table, key, copy_json(values))


def require_stream(ctx: EventContext, expected: str) -> None:
    if ctx.event.stream != expected:
        raise EventError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"{ctx.event.event_type} for this subject belongs on stream {expected!r},"
            f" not {ctx.event.stream!r}",
        )


def epoch(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())


def holds_role(state: LedgerState, did: str, role: Role) -> bool:
    record = state.keys.get(did)
    return record is not None and not record.revoked and role in record.roles


def require_role(state: LedgerState, did: str, role: Role, what: str) -> None:
    """The signer of an inner document (WPC, receipt) is registered, active and holds ``role``."""
    record = state.keys.get(did)
    if record is None:
        raise EventError(ReasonCode.UNKNOWN_SIGNER, f"{what} signer {did} is not registered")
    if record.revoked:
        raise EventError(ReasonCode.SIGNER_REVOKED, f"{what} signer {did} was revoked")
    if role not in record.roles:
        raise EventError(
            ReasonCode.ROLE_NOT_ALLOWED, f"{what} signer {did} does not hold the {role} role"
        )


def active_halt(
    state: LedgerState, *, job_id: str | None = None, sub: str | None = None
) -> dict[str, Any] | None:
    """The active halt covering this job or subject (``*`` covers all), if any."""
    targets = ["*"]
    if job_id:
        targets.append(f"job:{job_id}")
    if sub:
        targets.append(f"sub:{sub}")
    for target in targets:
        record = state.halts.get(target)
        if record is not None and record.get("active"):
            return record
    return None


def require_not_halted(
    state: LedgerState, what: str, *, job_id: str | None = None, sub: str | None = None
) -> None:
    halt = active_halt(state, job_id=job_id, sub=sub)
    if halt is not None:
        raise EventError(
            ReasonCode.AGENT_HALTED,
            f"{what} refused: halt {halt['target']!r} is active ({halt['reason']})",
            hint=f"`claw-ledger resume {halt['target']} --policy HASH --reason ...` lifts it",
        )


_POLICIES = Known(
    "policies",
    PolicyError,
    ReasonCode.WPC_UNKNOWN,
    "no WPC {} in the registry",
    "publish it first with `claw-ledger wpc publish FILE --key K`",
)


def usable_policy(
    state: LedgerState, policy_hash: str, *, allow_superseded: bool = False
) -> dict[str, Any]:
    """The registry record of a WPC that may be used now, else a ``PolicyError``.

    ``MALFORMED_POLICY_HASH``, ``WPC_UNKNOWN``, ``WPC_REVOKED``, ``WPC_SUPERSEDED``.
    """
    check_policy_hash(policy_hash)
    record = _POLICIES.require(state, policy_hash)
    if record["status"] == REVOKED:
        raise PolicyError(
            ReasonCode.WPC_REVOKED, f"WPC {policy_hash} was revoked: {record['revoked_reason']}"
        )
    if record["status"] == SUPERSEDED and not allow_superseded:
        raise PolicyError(
            ReasonCode.WPC_SUPERSEDED,
            f"WPC {policy_hash} was superseded by {record['superseded_by']}",
        )
    return record


# --- timeline summaries -------------------------------------------------------------


def short(value: Any) -> str:
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], Mapping):
            return ",".join(str(v.get("name", "?")) for v in value)
        return ",".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "…"


def action_summary(body: Mapping[str, Any]) -> str:
    """A decision's action in a timeline line: ``tool=NAME`` or ``model=PROVIDER/MODEL``."""
    action = body.get("action") or {}
    if action.get("kind") == "tool":
        return f"tool={action.get('tool')}"
    return f"model={action.get('provider')}/{action.get('model')}"


def summarize_fields(body: Mapping[str, Any], names: tuple[str, ...]) -> str:
    """``name=value`` for each named field the body holds (``None`` left out)."""
    return " ".join(f"{name}={short(body[name])}" for name in names if body.get(name) is not None)


def fields_summary(*names: str) -> SummaryFn:
    """A timeline summary of these body fields, in this order."""

    def summary(body: Mapping[str, Any], /) -> str:
        return summarize_fields(body, names)

    return summary
