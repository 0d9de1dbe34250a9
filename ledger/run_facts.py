"""What a run's ledger events say about it: one fold, shared by sealing, verifying and showing.

The input is the run's accepted events as parsed envelopes, in log order: the
events of its stream ``job:<id>`` (lifecycle, receipts, authorize decisions),
the ``token.issued`` of its token, the ``policy.published`` of its WPC and the
halts of the targets that cover it. :func:`run_facts` folds them into
:class:`RunFacts`; the sealer writes its summaries into the bundle and the
offline verifier recomputes them from the same events, so the two cannot
disagree about what a bundle means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.bundles import chain_entry
from ledger.canonical import jcs, parse_json_stored
from ledger.encoding import sha256_b64u

__all__ = [
    "DECISION_TYPES",
    "LIFECYCLE_TYPES",
    "SEAL_EVENT_TYPES",
    "RunFacts",
    "kill_switch_view",
    "run_facts",
    "run_streams",
]

#: the events of a job's clawsig event chain (ledger/types/runs.py)
LIFECYCLE_TYPES = frozenset({"run.manifest_approved", "run.started", "run.completed"})
#: authorize decisions (ledger/types/decisions.py, when that family is installed)
DECISION_TYPES = {"call.authorized": True, "call.denied": False}
#: events about bundles themselves: never part of what a bundle seals
SEAL_EVENT_TYPES = frozenset({"bundle.sealed", "pulse.published"})
_HALT_TYPES = frozenset({"agent.halted", "agent.resumed"})


def run_streams(job_id: str, *, jti: str | None, wpc: str | None, sub: str | None) -> set[str]:
    """The streams whose events belong to a run's bundle."""
    streams = {f"job:{job_id}", f"halt:job:{job_id}", "halt:*"}
    if jti:
        streams.add(f"token:{jti}")
    if wpc:
        streams.add(f"policy:{wpc}")
    if sub:
        streams.add(f"halt:sub:{sub}")
    return streams


@dataclass
class RunFacts:
    """The run as its events tell it. ``None`` where an event is missing."""

    job_id: str
    manifest: Mapping[str, Any] | None = None
    started: Mapping[str, Any] | None = None
    completed: Mapping[str, Any] | None = None
    token_issued: Mapping[str, Any] | None = None
    policy_published: Mapping[str, Any] | None = None
    #: (the receipt.recorded payload, the receipt envelope parsed in its own key order)
    receipts: list[tuple[Mapping[str, Any], Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    halts: list[dict[str, Any]] = field(default_factory=list)
    chain: list[dict[str, Any]] = field(default_factory=list)
    #: event id -> position of the event in the input (its log order)
    order: dict[str, int] = field(default_factory=dict)
    #: every number in the receipts parsed here is a safe integer (a faster hash)
    plain_numbers: bool = True

    @property
    def urm(self) -> Mapping[str, Any] | None:
        return None if self.manifest is None else self.manifest["body"]["urm"]

    @property
    def agent_did(self) -> str | None:
        """The runtime that started the run (the signer of ``run.started``)."""
        return None if self.started is None else str(self.started["producer"])

    @property
    def sub(self) -> str | None:
        return None if self.token_issued is None else str(self.token_issued["body"]["sub"])

    @property
    def outputs(self) -> list[dict[str, Any]] | None:
        if self.completed is None:
            return None
        return [dict(o) for o in self.completed["body"]["outputs"]]

    def covering_targets(self) -> set[str]:
        targets = {"*", f"job:{self.job_id}"}
        if self.sub:
            targets.add(f"sub:{self.sub}")
        return targets

    def status(self) -> str:
        """completed, halted (an open halt covers it), running or approved."""
        if self.completed is not None:
            return "completed"
        covering = self.covering_targets()
        if any(h["resumed_event_id"] is None and h["target"] in covering for h in self.halts):
            return "halted"
        return "running" if self.started is not None else "approved"

    def token_summary(self) -> dict[str, Any] | None:
        """The token's identity and hashes as recorded; the token itself never is."""
        if self.token_issued is None:
            return None
        body = self.token_issued["body"]
        names = ("jti", "sub", "issuer_did", "iat", "exp", "token_scope_hash_b64u")
        summary = {name: body[name] for name in names}
        summary["token_sha256_b64u"] = body["token_sha256_b64u"]
        summary["policy_hash_b64u"] = body.get("policy_hash_b64u")
        return summary

    def receipt_signatures(self) -> frozenset[tuple[str, str, str]]:
        """Each receipt's (signer DID, payload hash, signature): the ledger
        verified every one before it accepted the event that holds it."""
        return frozenset(
            (str(r["signer_did"]), str(r["payload_hash_b64u"]), str(r["signature_b64u"]))
            for _, r in self.receipts
        )

    def counts(self) -> dict[str, int]:
        allowed = sum(1 for d in self.decisions if d["allowed"])
        return {
            "events": len(self.order),
            "receipts": len(self.receipts),
            "decisions_allowed": allowed,
            "decisions_denied": len(self.decisions) - allowed,
            "halts": len(self.halts),
            "outputs": len(self.outputs or ()),
        }


def _decision(payload: Mapping[str, Any], index: int) -> dict[str, Any]:
    body = payload["body"]
    return {
        "decision_id": body.get("decision_id"),
        "allowed": DECISION_TYPES[str(payload["event_type"])],
        "action": body.get("action"),
        "reason_code": body.get("reason_code"),
        "policy_hash_b64u": body.get("policy_hash_b64u"),
        "token_scope_hash_b64u": body.get("token_scope_hash_b64u"),
        "halt_target": body.get("halt_target"),
        "halt_state": body.get("halt_state"),
        "decided_at": body.get("decided_at"),
        "event_id": payload["event_id"],
        "order": index,
    }


def _halt(facts: RunFacts, payload: Mapping[str, Any], index: int) -> None:
    body = payload["body"]
    target = str(body["target"])
    if payload["event_type"] == "agent.halted":
        open_window = next(
            (h for h in facts.halts if h["target"] == target and h["resumed_event_id"] is None),
            None,
        )
        if open_window is not None:  # halting again refreshes the open window
            open_window.update(reason=body["reason"])
            return
        facts.halts.append(
            {
                "target": target,
                "reason": body["reason"],
                # absent before the kill-switch fields existed: everything was denied
                "tools": body.get("tools", True),
                "model_egress": body.get("model_egress", True),
                "policy_hash_b64u": body.get("policy_hash_b64u"),
                "halted_at": payload["occurred_at"],
                "halted_event_id": payload["event_id"],
                "halted_order": index,
                "resumed_at": None,
                "resumed_event_id": None,
                "resumed_order": None,
            }
        )
        return
    for window in facts.halts:
        if window["target"] == target and window["resumed_event_id"] is None:
            window.update(
                resumed_at=payload["occurred_at"],
                resumed_event_id=payload["event_id"],
                resumed_order=index,
            )


def run_facts(job_id: str, payloads: Sequence[Mapping[str, Any]]) -> RunFacts:
    """Fold a run's event payloads (``ledger_event`` payloads, in log order)."""
    facts = RunFacts(job_id)
    jti: str | None = None
    for index, payload in enumerate(payloads):
        event_type = str(payload["event_type"])
        if event_type in SEAL_EVENT_TYPES:
            continue
        facts.order[str(payload["event_id"])] = index
        body = payload["body"]
        if event_type in LIFECYCLE_TYPES:
            if event_type == "run.manifest_approved":
                facts.manifest = payload
            elif event_type == "run.started":
                facts.started = payload
                jti = str(body["cst_jti"])
            else:
                facts.completed = payload
            facts.chain.append(
                chain_entry(
                    event_id=str(payload["event_id"]),
                    run_id=job_id,
                    event_type=event_type,
                    timestamp=str(payload["occurred_at"]),
                    payload_hash_b64u=sha256_b64u(jcs(payload)),
                    prev_hash_b64u=facts.chain[-1]["event_hash_b64u"] if facts.chain else None,
                )
            )
        elif event_type == "receipt.recorded":
            # accepted by the ledger, which parsed it strictly (ledger/types/runs.py)
            receipt, plain = parse_json_stored(str(body["receipt_envelope_json"]))
            facts.plain_numbers = facts.plain_numbers and plain
            facts.receipts.append((payload, receipt))
        elif event_type in DECISION_TYPES:
            facts.decisions.append(_decision(payload, index))
        elif event_type in _HALT_TYPES:
            _halt(facts, payload, index)
        elif event_type == "token.issued":
            facts.token_issued = payload
        elif event_type == "policy.published":
            facts.policy_published = payload
    if facts.token_issued is not None and facts.token_issued["body"]["jti"] != jti:
        facts.token_issued = None
    return facts


def kill_switch_view(facts: RunFacts) -> list[dict[str, Any]]:
    """For each halt that covered the run: the last call allowed before it and the
    calls blocked while it held, each with the policy hash that decided it."""
    covering = facts.covering_targets()
    views: list[dict[str, Any]] = []
    for window in facts.halts:
        if window["target"] not in covering:
            continue
        start = window["halted_order"]
        end = window["resumed_order"]
        before = [d for d in facts.decisions if d["allowed"] and d["order"] < start]
        blocked = [
            d
            for d in facts.decisions
            if not d["allowed"] and d["order"] > start and (end is None or d["order"] < end)
        ]
        views.append(
            {"halt": window, "last_allowed": before[-1] if before else None, "blocked": blocked}
        )
    return views
