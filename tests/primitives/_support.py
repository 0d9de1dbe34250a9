"""Helpers for the primitive tests: fixed keys, a ledger state, and a driver
that sends each event through the processor's own pure pipeline
(:func:`ledger.verify.verify_message` then :func:`ledger.verify.decide`)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ledger.crypto import KeyPair
from ledger.envelope import format_timestamp, sign_envelope
from ledger.events import EVENT_ENVELOPE_TYPE
from ledger.registry import RuleSettings
from ledger.roles import Role
from ledger.state import KeyRecord, LedgerState, ProjectionRow
from ledger.tokens import build_claims, issue_token
from ledger.urm import sign_approval, urm_hash_b64u
from ledger.verify import Accepted, Rejected, decide, verify_message
from ledger.wpc import policy_hash_b64u, sign_wpc
from tests.core._helpers import example_urm, key

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
EXAMPLES: dict[str, Any] = json.loads((VECTORS / "examples.json").read_text(encoding="utf-8"))
BUNDLE_PASS: dict[str, Any] = json.loads(
    (VECTORS / "clawsig-proof-bundle-pass.v1.json").read_text(encoding="utf-8")
)
RFC8032_SEED = bytes.fromhex(EXAMPLES["rfc8032_test1"]["seed_hex"])
WPC_EXAMPLE: dict[str, Any] = EXAMPLES["wpc_example"]["payload"]
GOLDEN = Path(__file__).resolve().parent / "golden"

#: a fixed "now" for rule tests: 2026-02-12T00:00:00Z
NOW = 1_770_854_400
NOW_TS = "2026-02-12T00:00:00.000Z"


def ts(offset_seconds: int = 0) -> str:
    from datetime import UTC, datetime

    return format_timestamp(datetime.fromtimestamp(NOW + offset_seconds, UTC))


def _key(seed: int, name: str) -> Callable[[], KeyPair]:
    """The ``default_factory`` of a :class:`Keys` attribute: test key ``seed`` named ``name``."""
    return lambda: key(seed, name)


def _roles(*roles: Role) -> dict[str, tuple[Role, ...]]:
    """The ``metadata`` of a :class:`Keys` attribute: its key is registered holding
    ``roles`` (none: not registered)."""
    return {"roles": roles}


@dataclass
class Keys:
    admin: KeyPair = field(default_factory=_key(1, "admin"), metadata=_roles(Role.ADMIN))
    policy_admin: KeyPair = field(
        default_factory=_key(2, "policy-admin"), metadata=_roles(Role.POLICY_ADMIN)
    )
    issuer: KeyPair = field(default_factory=_key(3, "issuer"), metadata=_roles(Role.ISSUER))
    gateway: KeyPair = field(default_factory=_key(4, "gateway"), metadata=_roles(Role.GATEWAY))
    runtime: KeyPair = field(default_factory=_key(5, "runtime"), metadata=_roles(Role.RUNTIME))
    operator: KeyPair = field(default_factory=_key(6, "operator"), metadata=_roles(Role.OPERATOR))
    approver: KeyPair = field(default_factory=_key(7, "approver"), metadata=_roles(Role.APPROVER))
    approver2: KeyPair = field(default_factory=_key(8, "approver2"), metadata=_roles(Role.APPROVER))
    #: not registered on the ledger
    outsider: KeyPair = field(default_factory=_key(9, "outsider"), metadata=_roles())
    #: runtime that also holds the approver role (for the self-approval test)
    runtime_approver: KeyPair = field(
        default_factory=_key(10, "runtime-approver"), metadata=_roles(Role.RUNTIME, Role.APPROVER)
    )
    authorizer: KeyPair = field(
        default_factory=_key(11, "authorizer"), metadata=_roles(Role.AUTHORIZER)
    )
    #: the ledger's own key (seals bundles)
    ledger: KeyPair = field(default_factory=_key(12, "ledger"), metadata=_roles(Role.LEDGER))


#: each registered key's attribute on :class:`Keys` and its roles (the outsider has none)
ROLES: dict[str, tuple[Role, ...]] = {
    f.name: f.metadata["roles"] for f in fields(Keys) if f.metadata["roles"]
}


class Ledger:
    """A LedgerState with the test keys registered, driven event by event."""

    def __init__(self) -> None:
        self.keys = Keys()
        self.state = LedgerState(trust_root=self.keys.admin.did)
        for attr, roles in ROLES.items():
            kp: KeyPair = getattr(self.keys, attr)
            self.state.keys[kp.did] = KeyRecord(
                did=kp.did,
                name=attr,
                roles=frozenset(roles),
                registered_by=self.keys.admin.did,
                registered_event_id="00000000-0000-0000-0000-000000000000",
            )
        self.rows: list[ProjectionRow] = []
        self.accepted: list[Accepted] = []
        #: what the rules are given, as the processor gives them its own
        self.settings = RuleSettings()

    def sign(
        self,
        signer: KeyPair,
        event_type: str,
        stream: str,
        body: Mapping[str, Any],
        *,
        at: str = NOW_TS,
        event_id: str | None = None,
    ) -> bytes:
        """The event's envelope bytes, signed as any producer could, without the SDK's
        own validation: the processor's pipeline is the judge."""
        payload = {
            "event_type": event_type,
            "event_id": event_id or str(uuid.uuid4()),
            "stream": stream,
            "occurred_at": at,
            "producer": signer.did,
            "body": dict(body),
        }
        return sign_envelope(EVENT_ENVELOPE_TYPE, payload, signer).to_bytes()

    def submit(
        self, signer: KeyPair, event_type: str, stream: str, body: Mapping[str, Any], **kw: Any
    ) -> Accepted | Rejected:
        """Sign the event (``kw`` as :meth:`sign`: ``at``, ``event_id``), verify it and
        apply it to the state, as the processor would."""
        raw = self.sign(signer, event_type, stream, body, **kw)
        verdict = verify_message(raw)
        if isinstance(verdict, Rejected):
            return verdict
        outcome = decide(self.state, verdict, None, self.settings)
        assert not isinstance(outcome, type(None))
        if isinstance(outcome, Accepted):
            self.rows.extend(outcome.rows)
            self.accepted.append(outcome)
        assert isinstance(outcome, Accepted | Rejected)
        return outcome

    def ok(
        self, signer: KeyPair, event_type: str, stream: str, body: Mapping[str, Any], **kw: Any
    ) -> Accepted:
        outcome = self.submit(signer, event_type, stream, body, **kw)
        if isinstance(outcome, Rejected):
            raise AssertionError(f"refused: {outcome.code}: {outcome.detail}")
        return outcome

    def refused(
        self, signer: KeyPair, event_type: str, stream: str, body: Mapping[str, Any], **kw: Any
    ) -> Rejected:
        before = json.dumps(
            [self.state.policies, self.state.tokens, self.state.jobs, self.state.halts],
            sort_keys=True,
        )
        outcome = self.submit(signer, event_type, stream, body, **kw)
        assert isinstance(outcome, Rejected), "expected a rejection"
        after = json.dumps(
            [self.state.policies, self.state.tokens, self.state.jobs, self.state.halts],
            sort_keys=True,
        )
        assert before == after, "a rejected event changed the state"
        return outcome

    # --- building blocks of the flow ------------------------------------------

    def publish_wpc(self, document: Mapping[str, Any] | None = None) -> str:
        doc = dict(document or WPC_EXAMPLE)
        envelope = sign_wpc(doc, self.keys.policy_admin, issued_at=NOW_TS)
        digest = policy_hash_b64u(doc)
        self.ok(
            self.keys.policy_admin,
            "policy.published",
            f"policy:{digest}",
            {"policy_hash_b64u": digest, "wpc_envelope_json": envelope.to_bytes().decode()},
        )
        return digest

    def token(
        self,
        *,
        job: str | None = "job-1",
        policy: str | None = None,
        sub: str = "agent:alpha",
        ttl: int = 900,
        now: int = NOW,
        jti: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        claims = alpha_claims(
            sub=sub, ttl_seconds=ttl, now=now, jti=jti, policy_hash_b64u=policy, mission_id=job
        )
        issued = issue_token(claims, self.keys.issuer)
        return issued.token, issued.event_body(self.keys.issuer.did)

    def halt(
        self, target: str, reason: str = "incident", *, at: str = NOW_TS, **body: Any
    ) -> Accepted:
        """The operator halts ``target``; ``body`` adds to the halt's body (``model_egress``)."""
        return self.ok(
            self.keys.operator,
            "agent.halted",
            f"halt:{target}",
            {"target": target, "reason": reason, **body},
            at=at,
        )

    def issue(self, **kw: Any) -> dict[str, Any]:
        _, body = self.token(**kw)
        self.ok(self.keys.issuer, "token.issued", f"token:{body['jti']}", body)
        return body

    def urm(self, job_id: str, wpc: str, scope_hash: str, **over: Any) -> dict[str, Any]:
        return example_urm(job_id, wpc, scope_hash, **over)

    def approve_body(
        self, urm: dict[str, Any], approvers: list[KeyPair] | None = None
    ) -> dict[str, Any]:
        digest = urm_hash_b64u(urm)
        signers = [self.keys.approver] if approvers is None else approvers
        return {
            "job_id": urm["job"]["job_id"],
            "urm_hash_b64u": digest,
            "urm": urm,
            "approvals": [sign_approval(digest, k, approved_at=NOW_TS) for k in signers],
        }

    def approved_job(self, job_id: str = "job-1") -> tuple[str, dict[str, Any], str]:
        """WPC published, pinned job token issued, URM approved: (wpc, token body, token)."""
        wpc = self.publish_wpc() if not self.state.policies else next(iter(self.state.policies))
        token, body = self.token(job=job_id, policy=wpc)
        self.ok(self.keys.issuer, "token.issued", f"token:{body['jti']}", body)
        urm = self.urm(job_id, wpc, body["token_scope_hash_b64u"])
        self.ok(self.keys.runtime, "run.manifest_approved", f"job:{job_id}", self.approve_body(urm))
        return wpc, body, token

    def started_job(self, job_id: str = "job-1") -> tuple[str, dict[str, Any]]:
        wpc, body, _ = self.approved_job(job_id)
        job = self.state.jobs[job_id]
        self.ok(
            self.keys.runtime,
            "run.started",
            f"job:{job_id}",
            {"job_id": job_id, "urm_hash_b64u": job["urm_hash_b64u"], "cst_jti": body["jti"]},
            at=ts(60),
        )
        return wpc, body


def created_columns(migration: str, table: str) -> set[str]:
    """The columns ``CREATE TABLE table`` declares in ``migrations/<migration>``."""
    sql = (Path(__file__).resolve().parents[2] / "migrations" / migration).read_text()
    block = re.search(rf"CREATE TABLE {table} \((.*?)\n\);", sql, re.S)
    assert block, table
    return {
        line.split()[0]
        for line in block.group(1).splitlines()
        if line.strip() and not line.strip().startswith("--")
    }


def alpha_claims(**over: Any) -> dict[str, Any]:
    """The claims of agent:alpha's token to clawproxy (``build_claims`` keywords ``over``)."""
    claims: dict[str, Any] = {
        "sub": "agent:alpha",
        "aud": "clawproxy",
        "scope": ["proxy:call:anthropic", "tools:read"],
        "ttl_seconds": 900,
        "now": NOW,
    } | over
    return build_claims(**claims)


def sealed_body(job_id: str, **over: Any) -> dict[str, Any]:
    """A ``bundle.sealed`` body for ``job_id`` (the bundle itself is not needed by the rule)."""
    body: dict[str, Any] = {
        "job_id": job_id,
        "bundle_hash_b64u": "A" * 43,
        "bundle_id": "bundle-1",
        "trigger": "completed",
        "run_status": "completed",
        "checkpoint_size": 5,
        "event_count": 3,
        "receipt_count": 1,
    }
    return body | over


def pulse_body(job_id: str, **record_over: Any) -> dict[str, Any]:
    """A ``pulse.published`` body for ``job_id``, its id the record's hash."""
    from ledger.pulse import build_pulse_record, pulse_id

    fields: dict[str, Any] = {
        "job_id": job_id,
        "bundle_hash_b64u": "A" * 43,
        "bundle_id": "bundle-1",
        "policy_hash_b64u": None,
        "run_status": "completed",
        "counts": {"events": 3, "receipts": 1},
        "valid": True,
        "reason_code": "OK",
        "checkpoint": {"origin": "o", "size": 5, "root_hash_b64": "A" * 43 + "="},
    }
    record = build_pulse_record(**(fields | record_over))
    return {"pulse_id": pulse_id(record), "record": record}
