"""The event-type registry: its invariants, and the docs table that describes it."""

from __future__ import annotations

import dataclasses
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.registry import (
    DEFAULT_RULE_SETTINGS,
    EventRegistry,
    EventTypeSpec,
    RuleSettings,
    markdown_table,
)
from ledger.roles import Role, roles_allowed_for
from ledger.tokens import DEFAULT_MAX_TTL_SECONDS, HARD_MAX_TTL_SECONDS
from ledger.types import REGISTRY, halts, keys, tokens

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: the stream pattern LedgerEvent accepts, kind part
_KIND_RE = re.compile(r"[a-z][a-z0-9_-]*")


# --- the docs table ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DocRow:
    event_type: str
    #: field name → optional (``?``)
    fields: dict[str, bool]
    stream_kind: str
    roles: frozenset[str]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _fields(cell: str) -> dict[str, bool]:
    # notes in parentheses may hold backticks of their own: `target` (`*`, `sub:<s>`)
    bare = re.sub(r"\([^()]*\)", "", cell)
    out: dict[str, bool] = {}
    for token in re.findall(r"`([^`]+)`", bare):
        name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", token)
        assert name, token
        out[name.group(0)] = token.endswith("?")
    return out


def parse_event_table(markdown: str) -> list[DocRow]:
    """The rows of the first table after ``## Event types`` (type | fields | stream | roles)."""
    section = markdown.split("\n## Event types\n", 1)[1].split("\n## ", 1)[0]
    all_lines = section.splitlines()
    first = next(i for i, line in enumerate(all_lines) if line.startswith("|"))
    lines: list[str] = []
    for line in all_lines[first:]:  # the first table only: it ends at its first non-row line
        if not line.startswith("|"):
            break
        lines.append(line)
    header, rule, *rows = lines
    assert [c.split(" ")[0] for c in _cells(header)] == ["type", "body", "stream", "roles"]
    assert set(rule.replace("|", "")) == {"-"}
    parsed = []
    for line in rows:
        type_cell, fields_cell, stream_cell, roles_cell = _cells(line)
        event_type = re.fullmatch(r"`([^`]+)`", type_cell)
        stream = re.fullmatch(r"`([^`:]+):[^`]*`", stream_cell)
        assert event_type and stream, line
        roles = re.sub(r"\(.*?\)", "", roles_cell)
        parsed.append(
            DocRow(
                event_type=event_type.group(1),
                fields=_fields(fields_cell),
                stream_kind=stream.group(1),
                roles=frozenset(r.strip() for r in roles.split(",") if r.strip()),
            )
        )
    return parsed


def _check_against_registry(rows: list[DocRow]) -> None:
    documented = [row.event_type for row in rows]
    assert len(documented) == len(set(documented)), "a type has two rows"
    assert set(documented) - set(REGISTRY.event_types()) == set(), "rows of unknown types"
    assert set(REGISTRY.event_types()) - set(documented) == set(), "types without a row"
    for row in rows:
        spec = REGISTRY[row.event_type]
        assert row.stream_kind == spec.stream_kind, row.event_type
        assert row.roles == {role.value for role in spec.roles}, row.event_type
        model = spec.body.model_fields
        assert list(row.fields) == list(model), row.event_type
        assert row.fields == {n: not f.is_required() for n, f in model.items()}, row.event_type


def test_docs_event_table_matches_the_registry() -> None:
    _check_against_registry(parse_event_table(ARCHITECTURE.read_text(encoding="utf-8")))


def test_docs_table_check_catches_a_drift() -> None:
    good = parse_event_table(ARCHITECTURE.read_text(encoding="utf-8"))
    wrong_roles = [dataclasses.replace(good[0], roles=frozenset({"operator"})), *good[1:]]
    wrong_kind = [dataclasses.replace(good[0], stream_kind="job"), *good[1:]]
    unknown = [*good, dataclasses.replace(good[0], event_type="key.rotated")]
    missing = good[1:]
    extra_field = [dataclasses.replace(good[0], fields={**good[0].fields, "x": False}), *good[1:]]
    for broken in (wrong_roles, wrong_kind, unknown, missing, extra_field):
        with pytest.raises(AssertionError):
            _check_against_registry(broken)


def test_parser_reads_notes_and_optional_marks() -> None:
    table = (
        "\n## Event types\n\n| type | body fields | stream | roles allowed |\n|---|---|---|---|\n"
        "| `agent.halted` | `target` (`*`, `sub:<s>`), `reason?`, `outputs[{name, sha256}]` (≤9)"
        " | `halt:<target>` | operator, runtime (plus a note) |\n\n## Next\n"
    )
    (row,) = parse_event_table(table)
    assert row == DocRow(
        "agent.halted",
        {"target": False, "reason": True, "outputs": False},
        "halt",
        frozenset({"operator", "runtime"}),
    )


def test_python_m_ledger_types_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledger.types"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == markdown_table(REGISTRY)
    rows = parse_event_table("\n## Event types\n" + result.stdout)
    _check_against_registry(rows)
    assert [row.event_type for row in rows] == list(REGISTRY.event_types())


# --- the registry -------------------------------------------------------------------------


def test_registry_is_built_from_the_family_modules_in_a_stable_order() -> None:
    order = "keys policies tokens runs halts attestations checkpoints decisions bundles shadows"
    families = [importlib.import_module(f"ledger.types.{name}") for name in order.split()]
    assert REGISTRY.specs == tuple(spec for family in families for spec in family.SPECS)
    assert list(REGISTRY) == list(REGISTRY.specs)
    assert len(REGISTRY) == 23
    assert REGISTRY.event_types()[:2] == ("key.registered", "key.revoked")


def test_lookup() -> None:
    spec = REGISTRY["token.revoked"]
    assert spec.body is tokens.TokenRevoked
    assert spec.stream_kind == "token"
    assert "token.revoked" in REGISTRY and "token.deleted" not in REGISTRY
    assert REGISTRY.get("token.deleted") is None
    with pytest.raises(KeyError):
        REGISTRY["token.deleted"]


@pytest.mark.parametrize("spec", list(REGISTRY), ids=lambda s: s.event_type)
def test_every_spec_is_complete(spec: EventTypeSpec) -> None:
    assert _KIND_RE.fullmatch(spec.stream_kind)
    assert spec.stream_id.startswith("<") and spec.stream_id.endswith(">")
    assert spec.roles and spec.description
    assert spec.body.model_config.get("strict") and spec.body.model_config.get("extra") == "forbid"
    projections = {"keys", "policies", "tokens", "jobs", "halts", "receipts", "decisions"}
    assert set(spec.writes) <= projections | {"bundles", "pulse_records", "shadows"}
    assert isinstance(spec.summary({}), str)


def test_roles_come_from_the_registry() -> None:
    for spec in REGISTRY:
        assert roles_allowed_for(spec.event_type) == spec.roles
        assert REGISTRY.roles_allowed_for(spec.event_type) == spec.roles
        for role in spec.roles:
            assert spec.event_type in REGISTRY.types_allowed_for(role)
    # approvers sign inside run.manifest_approved; the ledger key signs checkpoints, seals
    # bundles and publishes Trust Pulse records
    assert REGISTRY.types_allowed_for(Role.APPROVER) == frozenset()
    assert REGISTRY.types_allowed_for(Role.LEDGER) == {
        "checkpoint.signed",
        "bundle.sealed",
        "pulse.published",
    }


def test_only_key_registration_has_a_bootstrap() -> None:
    assert [s.event_type for s in REGISTRY if s.signer_bootstrap is not None] == ["key.registered"]


def test_registry_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGISTRY.specs = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        REGISTRY._by_type["x"] = REGISTRY["key.revoked"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGISTRY["key.revoked"].roles = frozenset()  # type: ignore[misc]


def test_registry_refuses_a_type_twice() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        EventRegistry([*keys.SPECS, keys.SPECS[0]])


@pytest.mark.parametrize(
    "change", [{"roles": frozenset()}, {"description": ""}, {"description": "two\nlines"}]
)
def test_spec_refuses_an_incomplete_type(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(halts.SPECS[0], **change)


# --- rule settings ------------------------------------------------------------------------


def test_rule_settings() -> None:
    assert RuleSettings() == DEFAULT_RULE_SETTINGS
    assert RuleSettings().max_token_ttl_seconds == DEFAULT_MAX_TTL_SECONDS
    assert RuleSettings(max_token_ttl_seconds=HARD_MAX_TTL_SECONDS).max_token_ttl_seconds == (
        HARD_MAX_TTL_SECONDS
    )
    for bad in (0, -1, HARD_MAX_TTL_SECONDS + 1):
        with pytest.raises(ValueError):
            RuleSettings(max_token_ttl_seconds=bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_RULE_SETTINGS.max_token_ttl_seconds = 1  # type: ignore[misc]
