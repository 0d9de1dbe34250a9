"""Which rows of the bounded control tables a batch's decisions may read.

A processor holds ``tokens`` and ``jobs`` as bounded caches (ADR 0020) and
fetches, before planning a batch, the keys its rules will read. For each
event type, :data:`CONTROL_READS` lists those keys from the event itself
(``run.started`` reads its job and its token) and from rows already at hand
(``receipt.recorded`` reads the token of its job, named in the job's row).
:func:`batch_reads` is called again after each fetch until it lists nothing
new, which resolves such second-hand keys.

A full-stop halt of ``job:J`` or ``sub:S`` revokes every active token of
its scope: :data:`CONTROL_SCOPES` names those as :class:`ScopeRead` (the rows
with ``column = value`` and ``status``), which the processor fetches with the
keys; the rule reads them through :meth:`ledger.control_cache.ControlCache.in_scope`.
A halt of ``*`` has no scope read: its batch gets the whole table.

The list is an optimisation, not the guarantee: a plan that reads a key it
did not list is thrown away and planned again (:class:`ledger.control_cache.ControlCache`
records the miss). ``keys``, ``policies`` and ``halts`` are held whole and
are never listed. Every event type must have an entry (a test checks it), so
that a new one is thought about rather than silently re-planned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from ledger.registry import EventBody
from ledger.types._common import ACTIVE

if TYPE_CHECKING:
    from ledger.types.halts import AgentHalted
    from ledger.types.runs import ReceiptRecorded, RunCompleted, RunManifestApproved, RunStarted
    from ledger.types.tokens import TokenIssued, TokenRevoked

__all__ = [
    "BOUNDED_TABLES",
    "CONTROL_READS",
    "CONTROL_SCOPES",
    "Lookup",
    "ReadsFn",
    "ScopeRead",
    "batch_reads",
    "batch_scopes",
]

#: The control tables a processor may hold only in part (they grow with traffic).
BOUNDED_TABLES: tuple[str, ...] = ("tokens", "jobs")

#: ``lookup(table, key)``: the row at hand (cached or written earlier in the batch), or ``None``.
Lookup = Callable[[str, str], Mapping[str, Any] | None]
#: The ``(table, key)`` pairs one event's rule may read.
ReadsFn = Callable[[EventBody, Lookup], Iterator[tuple[str, str]]]


def _none(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    return iter(())


def _token_issued(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    yield "tokens", cast("TokenIssued", body).jti


def _token_revoked(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    yield "tokens", cast("TokenRevoked", body).jti


def _manifest_approved(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    yield "jobs", cast("RunManifestApproved", body).job_id


def _started(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    started = cast("RunStarted", body)
    yield "jobs", started.job_id
    yield "tokens", started.cst_jti


def _receipt(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    job_id = cast("ReceiptRecorded", body).job_id
    yield "jobs", job_id
    # the job's token is named in the job's row: listed once the row is at hand
    job = lookup("jobs", job_id)
    if job is not None and job.get("cst_jti") is not None:
        yield "tokens", str(job["cst_jti"])


def _halted(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    # a full stop of job:J also revokes the token J started with, named in J's row; the
    # other tokens of its scope come by CONTROL_SCOPES
    target = str(getattr(body, "target", ""))
    if target.startswith("job:"):
        yield "jobs", target[4:]
        job = lookup("jobs", target[4:])
        started = job.get("cst_jti") if job is not None else None
        if cast("AgentHalted", body).full_stop and started is not None:
            yield "tokens", str(started)


def _completed(body: EventBody, lookup: Lookup, /) -> Iterator[tuple[str, str]]:
    yield "jobs", cast("RunCompleted", body).job_id


#: event type -> the bounded-table rows its rule may read
CONTROL_READS: dict[str, ReadsFn] = {
    "key.registered": _none,
    "key.revoked": _none,
    "policy.published": _none,
    "policy.superseded": _none,
    "policy.revoked": _none,
    "token.issued": _token_issued,
    "token.revoked": _token_revoked,
    "receipt.recorded": _receipt,
    "run.manifest_approved": _manifest_approved,
    "run.started": _started,
    "run.completed": _completed,
    "agent.halted": _halted,
    "agent.resumed": _none,
    "policy.attested": _none,
    "policy.drift": _none,
    "checkpoint.signed": _none,
    "call.authorized": _none,
    "call.denied": _none,
    "bundle.sealed": _none,
    "pulse.published": _none,
    "policy.shadowed": _none,
    "policy.shadow_ended": _none,
    "call.shadowed": _none,
}


class ScopeRead(NamedTuple):
    """Every row of ``table`` with ``column`` = ``value`` and ``status``: all a rule
    may select for ``scope`` (a halt's target)."""

    table: str
    scope: str
    column: str
    value: str
    status: str


#: ``scopes(body)``: the scope reads one event's rule makes.
ScopesFn = Callable[[EventBody], Iterator[ScopeRead]]

#: the columns a scope selects on, per halt target kind (``*`` has none: the whole table)
_TOKEN_SCOPE_COLUMNS = {"job:": "mission_id", "sub:": "sub"}


def _halted_scopes(body: EventBody, /) -> Iterator[ScopeRead]:
    # only a full stop revokes tokens (a partial halt leaves them: ledger.types.halts)
    halted = cast("AgentHalted", body)
    column = _TOKEN_SCOPE_COLUMNS.get(halted.target[:4])
    if halted.full_stop and column is not None:
        yield ScopeRead("tokens", halted.target, column, halted.target[4:], ACTIVE)


#: event type -> the scopes of bounded tables its rule may look through
CONTROL_SCOPES: dict[str, ScopesFn] = {"agent.halted": _halted_scopes}


def batch_scopes(events: Iterable[tuple[str, EventBody]]) -> list[ScopeRead]:
    """The scope reads the ``(event_type, body)`` pairs' rules make, each once."""
    scopes: dict[tuple[str, str], ScopeRead] = {}
    for event_type, body in events:
        scoped = CONTROL_SCOPES.get(event_type)
        if scoped is not None:
            for read in scoped(body):
                scopes.setdefault((read.table, read.scope), read)
    return list(scopes.values())


def batch_reads(events: Iterable[tuple[str, EventBody]], lookup: Lookup) -> dict[str, set[str]]:
    """The keys of each bounded table that the ``(event_type, body)`` pairs may read.

    An event type without an entry lists nothing (its plan is re-planned if it
    reads a bounded table). The bodies are those the schema step validated.
    """
    wanted: dict[str, set[str]] = {table: set() for table in BOUNDED_TABLES}
    for event_type, body in events:
        reads = CONTROL_READS.get(event_type)
        if reads is None:
            continue
        for table, key in reads(body, lookup):
            wanted[table].add(key)
    return wanted
