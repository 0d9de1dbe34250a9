"""Comparing a rebuilt state with the live one: projection diffs and what held at a time.

Pure functions over :class:`~ledger.state.ProjectionRow` lists, the live rows
(table -> key -> row) and a :class:`~ledger.state.LedgerState`; used by
``claw-ledger replay --compare``, ``state at`` and the audit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.instants import format_instant
from ledger.state import LedgerState, ProjectionRow

__all__ = ["ProjectionDiff", "diff_projections", "point_in_time"]


@dataclass(frozen=True, slots=True)
class ProjectionDiff:
    """One row on which a rebuild and the live projections disagree.

    ``kind``: ``missing`` (rebuilt, not live), ``unexpected`` (live, not
    rebuilt) or ``changed`` (both, ``columns`` differ)."""

    table: str
    key: Any
    kind: str
    columns: tuple[str, ...] = ()
    rebuilt: Mapping[str, Any] | None = None
    live: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        pick = self.columns or None
        return {
            "table": self.table,
            "key": self.key,
            "kind": self.kind,
            "columns": list(self.columns),
            "rebuilt": _only(self.rebuilt, pick),
            "live": _only(self.live, pick),
        }

    def __str__(self) -> str:
        text = f"{self.table} {self.key!r}: {self.kind}"
        if self.columns:
            text += " " + ", ".join(
                f"{c} rebuilt={_plain(self.rebuilt, c)} live={_plain(self.live, c)}"
                for c in self.columns
            )
        return text


def _only(values: Mapping[str, Any] | None, columns: tuple[str, ...] | None) -> Any:
    if values is None:
        return None
    return {k: v for k, v in values.items() if columns is None or k in columns}


def _plain(values: Mapping[str, Any] | None, column: str) -> str:
    text = json.dumps(None if values is None else values.get(column), default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _normal(values: Mapping[str, Any], ignore: frozenset[str]) -> dict[str, Any]:
    # tuples and lists, ints from bigint columns: compared as the JSON they are
    return {k: json.loads(json.dumps(v, default=str)) for k, v in values.items() if k not in ignore}


def diff_projections(
    rebuilt: Iterable[ProjectionRow],
    live: Mapping[str, Mapping[Any, Mapping[str, Any]]],
    *,
    ignore: frozenset[str] = frozenset({"control_version"}),
) -> list[ProjectionDiff]:
    """Table by table, row by row: where ``rebuilt`` and ``live`` (table -> key ->
    row) differ. Columns in ``ignore`` (bookkeeping) are left out."""
    by_table: dict[str, dict[Any, dict[str, Any]]] = {table: {} for table in live}
    for row in rebuilt:
        by_table.setdefault(row.table, {})[row.values[row.key_column]] = _normal(row.values, ignore)
    diffs: list[ProjectionDiff] = []
    for table in sorted(by_table):
        mine = by_table[table]
        theirs = {k: _normal(v, ignore) for k, v in live.get(table, {}).items()}
        for key in sorted(mine.keys() | theirs.keys(), key=str):
            a, b = mine.get(key), theirs.get(key)
            if b is None:
                diffs.append(ProjectionDiff(table, key, "missing", rebuilt=a))
            elif a is None:
                diffs.append(ProjectionDiff(table, key, "unexpected", live=b))
            elif a != b:
                columns = tuple(sorted(c for c in a.keys() | b.keys() if a.get(c) != b.get(c)))
                diffs.append(ProjectionDiff(table, key, "changed", columns, a, b))
    return diffs


def point_in_time(state: LedgerState, at: datetime) -> dict[str, Any]:
    """What held at ``at`` in a state replayed up to it: active halts, valid tokens
    (issued, not revoked, ``iat`` ≤ ``at`` < ``exp``), active policies, running jobs."""
    moment = at.timestamp()
    return {
        "at": format_instant(at),
        "trust_root": state.trust_root,
        "halted": sorted(
            (
                {"target": t, "reason": h["reason"], "halted_at": h["halted_at"]}
                for t, h in state.halts.items()
                if h.get("active")
            ),
            key=lambda h: str(h["target"]),
        ),
        "valid_tokens": sorted(
            (
                {
                    "jti": jti,
                    "sub": t["sub"],
                    "mission_id": t.get("mission_id"),
                    "policy_hash_b64u": t.get("policy_hash_b64u"),
                    "exp": t["exp"],
                }
                for jti, t in state.tokens.items()
                if t["status"] == "active" and t["iat"] <= moment < t["exp"]
            ),
            key=lambda t: str(t["jti"]),
        ),
        "active_policies": sorted(h for h, p in state.policies.items() if p["status"] == "active"),
        "running_jobs": sorted(
            (
                {"job_id": j, "cst_jti": job.get("cst_jti"), "started_at": job.get("started_at")}
                for j, job in state.jobs.items()
                if job["status"] == "running"
            ),
            key=lambda j: str(j["job_id"]),
        ),
        "keys": {
            "registered": len(state.keys),
            "revoked": sorted(d for d, k in state.keys.items() if k.revoked),
        },
    }
