"""Reading policy values, and the one shape most findings share (upstream ``doctor/utils.ts``).

Most checks are "for each evidence entry the rule objects to, one finding
that points at the entry's config location". :class:`EntryCheck` describes
such a check as data and :func:`entry_findings` runs a table of them, so a
rule family module is mostly a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from openclaw_policy.evidence import Entry
from openclaw_policy.findings import Finding
from openclaw_policy.jsutil import UNDEFINED, is_record, js_lower, js_trim

__all__ = [
    "CONFIG_PATH_LABEL",
    "EntryCheck",
    "Match",
    "Message",
    "PolicyRule",
    "entry_findings",
    "get_path",
    "has_rule",
    "listed",
    "located_finding",
    "mirrors",
    "read_policy_boolean",
    "read_policy_string_array",
    "read_string_list",
    "sub",
    "when_false",
    "when_true",
]

CONFIG_PATH_LABEL: Final = "openclaw config"

Match = Callable[[Entry, Any], bool]
Message = Callable[[Entry, Any], str]


def mirrors(kind: str, field: str) -> Match:
    """For a :func:`when_true`/:func:`when_false` rule: matches an entry of ``kind`` whose
    ``field`` is anything but the flag the policy requires (even absent)."""
    return lambda entry, flag: entry["kind"] == kind and entry.get(field) is not flag


def get_path(value: Any, path: tuple[str, ...]) -> Any:
    current = value
    for part in path:
        if not is_record(current):
            return UNDEFINED
        current = current.get(part, UNDEFINED)
    return current


def sub(record: Any, key: str) -> dict[str, Any]:
    value = record.get(key) if is_record(record) else None
    return value if is_record(value) else {}


def has_rule(policy: Any, dotted: str, *keys: str) -> bool:
    """Whether the record at ``dotted`` has any of ``keys`` (which evidence a policy asks for)."""
    record = policy
    for part in dotted.split("."):
        record = sub(record, part)
    return any(key in record for key in keys)


def read_policy_string_array(
    policy: Any, path: tuple[str, ...], *, lowercase: bool = True
) -> list[str] | None:
    current = get_path(policy, path)
    if not isinstance(current, list) or not all(isinstance(e, str) for e in current):
        return None
    out = []
    for entry in current:
        trimmed = js_trim(entry)
        value = js_lower(trimmed) if lowercase else trimmed
        if value:
            out.append(value)
    return out


def read_string_list(policy: Any, path: tuple[str, ...], *, lowercase: bool = True) -> list[str]:
    return read_policy_string_array(policy, path, lowercase=lowercase) or []


def read_policy_boolean(policy: Any, path: tuple[str, ...]) -> bool | None:
    current = get_path(policy, path)
    return current if isinstance(current, bool) else None


def located_finding(
    check_id: str, message: str, source: str, requirement: str, fix_hint: str
) -> Finding:
    """A finding at a config location, against a policy requirement."""
    return Finding(
        check_id,
        "error",
        message,
        path=CONFIG_PATH_LABEL,
        oc_path=source,
        target=source,
        requirement=requirement,
        fix_hint=fix_hint,
    )


def _entry_source(entry: Entry) -> str:
    source: str = entry["source"]
    return source


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A policy rule at a dotted location; ``read(policy, entries)`` is its value.

    The value is ``None`` when the policy does not have the rule (its checks
    are skipped), else what the checks compare entries with, e.g. an allowlist.
    """

    path: str
    read: Callable[[Any, list[Entry]], Any]

    @property
    def requirement(self) -> str:
        return self.path.replace(".", "/")


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """One check over evidence entries: an entry ``matches`` the rule's value → a finding.

    Findings point at ``locate(entry)`` and require the rule's location.
    """

    check_id: str
    rule: PolicyRule
    matches: Match
    message: Message
    hint: str
    path: str = CONFIG_PATH_LABEL
    with_line: bool = False
    locate: Callable[[Entry], str] = _entry_source

    def finding(self, entry: Entry, rule: Any, doc: str) -> Finding:
        found = located_finding(
            self.check_id,
            self.message(entry, rule),
            self.locate(entry),
            f"oc://{doc}/{self.rule.requirement}",
            self.hint,
        )
        # a TOOLS.md check points at the file and the tool's line instead
        return replace(found, path=self.path, line=entry["line"] if self.with_line else None)


def entry_findings(
    checks: Sequence[EntryCheck],
    policy: Any,
    doc: str,
    entries: list[Entry],
    *,
    first_match: bool = False,
) -> list[Finding]:
    """Findings of ``checks`` in table order, each over all entries.

    With ``first_match`` the entries come first instead: an entry yields the
    finding of the first check it fails, then the next entry is looked at
    (a denied provider is not also reported as unapproved).
    """
    rules = [(check, check.rule.read(policy, entries)) for check in checks]
    active = [(check, rule) for check, rule in rules if rule is not None]
    if first_match:
        out = []
        for entry in entries:
            failed = next(((c, r) for c, r in active if c.matches(entry, r)), None)
            if failed is not None:
                out.append(failed[0].finding(entry, failed[1], doc))
        return out
    return [
        check.finding(entry, rule, doc)
        for check, rule in active
        for entry in entries
        if check.matches(entry, rule)
    ]


def listed(
    path: str, *, lowercase: bool = True, normalize: Callable[[str], str] | None = None
) -> PolicyRule:
    """A policy string list, as a set; an empty or missing list is no rule."""
    keys = tuple(path.split("."))

    def read(policy: Any, _entries: list[Entry]) -> set[str] | None:
        values = read_string_list(policy, keys, lowercase=lowercase)
        return {normalize(v) if normalize else v for v in values} or None

    return PolicyRule(path, read)


def _when(path: str, flag: bool) -> PolicyRule:
    """Active only when the policy says ``flag`` at ``path``; the rule's value is ``flag``."""
    keys = tuple(path.split("."))
    return PolicyRule(
        path, lambda policy, _: flag if read_policy_boolean(policy, keys) is flag else None
    )


def when_false(path: str) -> PolicyRule:
    """A rule like ``allowX: false``: active only when the policy says ``false``."""
    return _when(path, False)


def when_true(path: str) -> PolicyRule:
    """A rule like ``requireX: true``: active only when the policy says ``true``."""
    return _when(path, True)
