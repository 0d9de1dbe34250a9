"""What two Work Policy Contracts allow differently, for a reviewer.

Tools and model providers are compared by asking the authorize decision's own
rule (:func:`ledger.authorize.action_verdict`) about every name either WPC
mentions, so the diff can never disagree with enforcement. A name neither WPC
mentions gets each one's default, which the diff reports separately.
Approvals and token binding are compared field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.authorize import Action, action_verdict
from ledger.wpc import AllowDeny, WpcDocument, policy_hash_b64u, validate_wpc

__all__ = ["ActionChange", "FieldChange", "WpcDiff", "diff_wpcs"]

#: a name no WPC would mention, to learn each one's default for unnamed tools/providers
_UNNAMED_TOOL = "\u2063unnamed-tool"
_UNNAMED_PROVIDER = "\u2063unnamed-provider"
_UNNAMED_MODEL = "any-model"


@dataclass(frozen=True, slots=True)
class ActionChange:
    """A tool or a model provider allowed by one WPC and denied by the other."""

    kind: str  # "tool" or "model"
    name: str
    old: bool
    new: bool
    old_reason: str
    new_reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "old": "allow" if self.old else "deny",
            "new": "allow" if self.new else "deny",
            "old_reason": self.old_reason,
            "new_reason": self.new_reason,
        }


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One setting of a section that differs (``None``: not set)."""

    section: str
    name: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "name": self.name, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class WpcDiff:
    old_hash: str
    new_hash: str
    actions: tuple[ActionChange, ...] = ()
    defaults: tuple[ActionChange, ...] = ()
    fields: tuple[FieldChange, ...] = field(default=())

    @property
    def identical(self) -> bool:
        return self.old_hash == self.new_hash

    @property
    def newly_denied(self) -> tuple[ActionChange, ...]:
        return tuple(c for c in (*self.actions, *self.defaults) if c.old and not c.new)

    @property
    def newly_allowed(self) -> tuple[ActionChange, ...]:
        return tuple(c for c in (*self.actions, *self.defaults) if c.new and not c.old)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old_policy_hash_b64u": self.old_hash,
            "new_policy_hash_b64u": self.new_hash,
            "identical": self.identical,
            "actions": [c.to_dict() for c in self.actions],
            "defaults": [c.to_dict() for c in self.defaults],
            "fields": [c.to_dict() for c in self.fields],
            "newly_denied": len(self.newly_denied),
            "newly_allowed": len(self.newly_allowed),
        }


def _names(section: AllowDeny | None) -> set[str]:
    if section is None:
        return set()
    return {*(section.allow or ()), *(section.deny or ())}


def _tools(document: WpcDocument) -> set[str]:
    enforcement = document.enforcement
    return _names(document.tools) | _names(enforcement.tools if enforcement else None)


def _models(document: WpcDocument) -> set[tuple[str, str]]:
    """(provider, model) pairs the WPC names; a bare provider stands for any model."""
    names: set[str] = set()
    calls = document.model_calls
    if calls is not None:
        names |= {*(calls.allowed_providers or ()), *(calls.denied_providers or ())}
    if document.model_routing is not None and document.model_routing.provider:
        names.add(document.model_routing.provider)
    if document.enforcement is not None:
        names |= _names(document.enforcement.model_egress)
    pairs = set()
    for name in names:
        provider, _, model = name.partition("/")
        pairs.add((provider, model or _UNNAMED_MODEL))
    return pairs


def _compare(
    old: WpcDocument, new: WpcDocument, actions: Iterable[tuple[str, Action]]
) -> list[ActionChange]:
    changes = []
    for name, action in actions:
        old_ok, old_code, _ = action_verdict(old, action)
        new_ok, new_code, _ = action_verdict(new, action)
        if old_ok != new_ok:
            changes.append(
                ActionChange(action.kind, name, old_ok, new_ok, old_code.value, new_code.value)
            )
    return changes


def _model_label(provider: str, model: str) -> str:
    return provider if model == _UNNAMED_MODEL else f"{provider}/{model}"


_FIELD_SECTIONS = ("approvals", "token_binding", "cst_requirements", "runtime", "mode")


def _section_fields(document: WpcDocument, section: str) -> dict[str, Any]:
    if section == "mode":
        return {"halt": document.halt_mode}
    value = getattr(document, section)
    if value is None:
        return {}
    dumped: Mapping[str, Any] = value.model_dump(mode="json", exclude_none=True)
    return dict(dumped)


def diff_wpcs(old_document: Mapping[str, Any], new_document: Mapping[str, Any]) -> WpcDiff:
    """Compare two WPC documents; raises ``PolicyError`` for an invalid one."""
    old, new = validate_wpc(old_document), validate_wpc(new_document)
    tools = sorted(_tools(old) | _tools(new))
    models = sorted(_models(old) | _models(new))
    named = _compare(old, new, [(t, Action.for_tool(t)) for t in tools])
    named += _compare(
        old,
        new,
        [(_model_label(p, m), Action.for_model(p, m)) for p, m in models],
    )
    defaults = _compare(
        old,
        new,
        [
            ("any other tool", Action("tool", tool=_UNNAMED_TOOL)),
            (
                "any other provider",
                Action("model", provider=_UNNAMED_PROVIDER, model=_UNNAMED_MODEL),
            ),
        ],
    )
    fields: list[FieldChange] = []
    for section in _FIELD_SECTIONS:
        before, after = _section_fields(old, section), _section_fields(new, section)
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                fields.append(FieldChange(section, name, before.get(name), after.get(name)))
    return WpcDiff(
        policy_hash_b64u(dict(old_document)),
        policy_hash_b64u(dict(new_document)),
        tuple(named),
        tuple(defaults),
        tuple(fields),
    )
