"""The authorize tests' shared world: a running job-1 and its token, decision time, settings."""

from __future__ import annotations

from typing import Any

from ledger.authorize import (
    Action,
    AuthorizeSettings,
    CallRequest,
    Decision,
    DecisionView,
    decide_call,
)
from ledger.crypto import KeyPair
from ledger.errors import ReasonCode
from ledger.tokens import issue_token
from tests.primitives._support import NOW, WPC_EXAMPLE, Ledger, alpha_claims, ts

#: decisions are made two minutes after the tokens were issued
AT = NOW + 120
SETTINGS = AuthorizeSettings(max_staleness_seconds=5)
READ = Action.for_tool("read")
MODEL_WPC: dict[str, Any] = {
    **WPC_EXAMPLE,
    "model_calls": {"allowed_providers": ["anthropic"], "denied_providers": ["shady"]},
}


class World:
    """A running job-1 under a WPC with tool and model rules, and its token."""

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        self.ledger = Ledger()
        self.wpc = self.ledger.publish_wpc(document or MODEL_WPC)
        self.body, self.token = self._start("job-1")

    def _start(self, job: str) -> tuple[dict[str, Any], str]:
        _, body, token = self.ledger.approved_job(job)
        started = {"job_id": job, "urm_hash_b64u": self.job(job)["urm_hash_b64u"]}
        self.ledger.ok(
            self.ledger.keys.runtime,
            "run.started",
            f"job:{job}",
            started | {"cst_jti": body["jti"]},
            at=ts(60),
        )
        return body, token

    def job(self, job: str = "job-1") -> dict[str, Any]:
        return self.ledger.state.jobs[job]

    def decide(
        self,
        token: str | None = None,
        *,
        job: str = "job-1",
        action: Action = READ,
        at: float = AT,
        view: DecisionView | None = None,
    ) -> Decision:
        view = view or DecisionView.of(self.ledger.state, synced_at=at - 1)
        request = CallRequest(token or self.token, job, action, "n-1")
        return decide_call(view, request, at, SETTINGS)

    def signed(self, key: KeyPair, **over: Any) -> str:
        """A token with the claims of the job's token, changed by ``over``, signed by ``key``."""
        claims = alpha_claims(**{"policy_hash_b64u": self.wpc, "mission_id": "job-1"} | over)
        return issue_token(claims, key).token

    def code(self, decision: Decision) -> ReasonCode:
        return decision.reason_code
