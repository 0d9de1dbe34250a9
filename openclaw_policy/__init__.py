"""OpenClaw-compatible policy checks (``openclaw policy check`` / ``policy watch``).

A port of the OpenClaw Policy plugin: the same findings, the same evidence and
byte-identical policy, workspace, findings and attestation hashes
(docs/formats.md §8). Pure code: it reads files, never prints, and imports no
Kafka, Postgres or HTTP client and nothing of the application; the ledger
does not import it.

The layout follows upstream ``extensions/policy/src/``: ``evidence`` (the
``policy-state*.ts`` scanners), ``checks`` (the ``doctor/scopes`` rule
families), ``evaluation`` (``evaluatePolicy``), ``attestation`` (the hashes),
``report`` (``buildPolicyCheckReport``), and the JavaScript semantics they
rely on (``jsutil``, ``collation``, ``stable_json``, ``loader``).

>>> result = run_policy_check("policy.jsonc", "openclaw.json", ".")  # doctest: +SKIP
>>> result.to_json()["attestation"]["attestationHash"]  # doctest: +SKIP
"""

from __future__ import annotations

from openclaw_policy.findings import SEVERITIES, parse_severity
from openclaw_policy.report import PolicyCheckResult, run_policy_check
from openclaw_policy.stable_json import js_stringify

__all__ = [
    "SEVERITIES",
    "PolicyCheckResult",
    "js_stringify",
    "parse_severity",
    "run_policy_check",
]
