"""The event-type registry: everything the ledger knows about one event type, in one place.

An :class:`EventTypeSpec` holds a type's body schema, the stream kind it is
filed under, the roles that may publish it, its rule (``check`` then
``apply``), the projection tables the rule writes, and how the timeline
summarises it. The specs live beside their body models and rules in
``ledger/types/<family>.py``; ``ledger.types.REGISTRY`` is the one
:class:`EventRegistry` built from them.

Rules are pure functions of the state, the event and the :class:`RuleSettings`
they are given: no rule reads a module-level setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args, get_origin

from pydantic import BaseModel, ConfigDict
from pydantic.fields import FieldInfo

from ledger.roles import Role
from ledger.tokens import DEFAULT_MAX_TTL_SECONDS, HARD_MAX_TTL_SECONDS

if TYPE_CHECKING:
    from ledger.state import EventContext, LedgerState, ProjectionRow

__all__ = [
    "DEFAULT_RULE_SETTINGS",
    "ApplyFn",
    "CheckFn",
    "EventBody",
    "EventRegistry",
    "EventTypeSpec",
    "Lane",
    "RuleSettings",
    "SignerBootstrap",
    "SummaryFn",
    "markdown_table",
]


class EventBody(BaseModel):
    """Base of every typed body: frozen, unknown fields refused, nothing coerced."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """What an operator may tune about the rules; handed to every rule call."""

    #: ``exp - iat`` allowed for a recorded token (at most ``HARD_MAX_TTL_SECONDS``)
    max_token_ttl_seconds: int = DEFAULT_MAX_TTL_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.max_token_ttl_seconds <= HARD_MAX_TTL_SECONDS:
            raise ValueError(f"max_token_ttl_seconds must be in 1..{HARD_MAX_TTL_SECONDS}")


#: The settings a processor runs with unless its operator sets others.
DEFAULT_RULE_SETTINGS = RuleSettings()


class CheckFn(Protocol):
    """Refuse the event by raising a ``RejectedError``; never changes the state."""

    def __call__(
        self, state: LedgerState, ctx: EventContext, settings: RuleSettings, /
    ) -> None: ...


class ApplyFn(Protocol):
    """Change the state for an accepted event; return the projection rows it touched."""

    def __call__(
        self, state: LedgerState, ctx: EventContext, settings: RuleSettings, /
    ) -> list[ProjectionRow]: ...


class SignerBootstrap(Protocol):
    """True when this event may pass the signer check without a registered signer."""

    def __call__(self, state: LedgerState, ctx: EventContext, /) -> bool: ...


class SummaryFn(Protocol):
    """One line for the timeline, from the event's JSON body."""

    def __call__(self, body: Mapping[str, Any], /) -> str: ...


#: Where an event travels: ``"control"`` (halts, resumes, revocations) is
#: consumed ahead of ``"ingress"`` (everything else), so that a kill switch
#: never waits behind bulk traffic.
Lane = Literal["ingress", "control"]


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    event_type: str
    body: type[EventBody]
    #: the stream an event of this type is filed under is ``<stream_kind>:<id>``
    stream_kind: str
    #: what the ``<id>`` of the stream is, for the docs (``<did>``, ``<job_id>``)
    stream_id: str
    #: who may publish it (the signer must hold one of these roles)
    roles: frozenset[Role]
    check: CheckFn
    apply: ApplyFn
    #: the projection tables ``apply`` returns rows for
    writes: tuple[str, ...]
    description: str
    summary: SummaryFn
    #: lets the trust root register itself before any key exists
    signer_bootstrap: SignerBootstrap | None = None
    #: the topic lane producers route it to
    lane: Lane = "ingress"

    def __post_init__(self) -> None:
        if not self.roles:
            raise ValueError(f"{self.event_type}: no role may publish it")
        if not self.description or "\n" in self.description:
            raise ValueError(f"{self.event_type}: the description is one line")


@dataclass(frozen=True)
class EventRegistry:
    """The event types, in a stable order (the order the specs were given)."""

    specs: tuple[EventTypeSpec, ...]
    _by_type: Mapping[str, EventTypeSpec] = field(init=False, repr=False, compare=False)

    def __init__(self, specs: Iterable[EventTypeSpec]) -> None:
        ordered = tuple(specs)
        by_type: dict[str, EventTypeSpec] = {}
        for spec in ordered:
            if spec.event_type in by_type:
                raise ValueError(f"event type {spec.event_type!r} is registered twice")
            by_type[spec.event_type] = spec
        object.__setattr__(self, "specs", ordered)
        object.__setattr__(self, "_by_type", MappingProxyType(by_type))

    def __getitem__(self, event_type: str) -> EventTypeSpec:
        return self._by_type[event_type]

    def get(self, event_type: str) -> EventTypeSpec | None:
        return self._by_type.get(event_type)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._by_type

    def __iter__(self) -> Iterator[EventTypeSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def event_types(self) -> tuple[str, ...]:
        return tuple(spec.event_type for spec in self.specs)

    def roles_allowed_for(self, event_type: str) -> frozenset[Role]:
        """The roles that may publish ``event_type``; none for an unknown type."""
        spec = self._by_type.get(event_type)
        return spec.roles if spec is not None else frozenset()

    def types_allowed_for(self, role: Role) -> frozenset[str]:
        """The event types a key holding ``role`` may publish."""
        return frozenset(spec.event_type for spec in self.specs if role in spec.roles)


# --- the docs table -------------------------------------------------------------------

_TABLE_HEADER = "| type | body fields (`?` optional) | stream | roles allowed |\n|---|---|---|---|"


def _field_text(name: str, info: FieldInfo) -> str:
    """```name[]`` (≥1)``: a body field as docs/architecture.md lists it."""
    suffix = ""
    notes: list[str] = []
    annotation = info.annotation
    if get_origin(annotation) is tuple:
        (item, *_) = get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            suffix = "[{" + ", ".join(item.model_fields) + "}]"
        else:
            suffix = "[]"
        # pydantic keeps Field(min_length=…, max_length=…) as annotated-types metadata
        for limit in info.metadata:
            if getattr(limit, "min_length", None) is not None:
                notes.append(f"≥{limit.min_length}")
            if getattr(limit, "max_length", None) is not None:
                notes.append(f"≤{limit.max_length}")
    elif get_origin(annotation) is dict:
        suffix = "{}"
    if info.description:
        notes.append(info.description)
    optional = "" if info.is_required() else "?"
    text = f"`{name}{suffix}{optional}`"
    return f"{text} ({', '.join(notes)})" if notes else text


def markdown_table(registry: EventRegistry) -> str:
    """The event types as docs/architecture.md's table: type | body fields | stream | roles."""
    lines = [_TABLE_HEADER]
    for spec in registry:
        fields = ", ".join(_field_text(n, i) for n, i in spec.body.model_fields.items())
        roles = ", ".join(role.value for role in Role if role in spec.roles)
        if spec.signer_bootstrap is not None:
            roles += " (plus the trust root's own bootstrap)"
        stream = f"`{spec.stream_kind}:{spec.stream_id}`"
        lines.append(f"| `{spec.event_type}` | {fields} | {stream} | {roles} |")
    return "\n".join(lines)
