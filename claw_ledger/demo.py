"""The demo scenario behind ``claw-ledger demo`` (and ``make run``).

It drives the real CLI, one command at a time, so what a newcomer watches is
exactly what they can type: keys and roles, a Work Policy Contract, an
approved run manifest, a pinned job-scoped token, a run with gateway receipts,
its completion, then the kill switch and a receipt the ledger refuses because
the job is halted; then the job's timeline, the checkpointer signing the
transparency log, a proof that the run's completion is in it (verified
offline) and the ledger audit. The checkpointer keeps running afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

from claw_ledger.config import Settings
from ledger.errors import DemoFailed, MigrationError
from ledger.tokens import token_scope_hash_b64u
from ledger.wpc import policy_hash_b64u

__all__ = ["finops_urm", "require_schema", "run_demo"]

ROLES = {
    "policy-admin": "policy-admin",
    "issuer": "issuer",
    "gateway": "gateway",
    "runtime": "runtime",
    "approver": "approver",
    "operator": "operator",
    "authorizer": "authorizer",
    # signs the transparency log's checkpoints (step 9)
    "ledger": "ledger",
}

WPC: dict[str, Any] = {
    "wpc_version": "1",
    "issuer": "security-team",
    "purpose": "read-only finance close for agent jobs",
    "runtime": {"baseline": "OpenClaw", "sandbox_mode": "all", "allow_elevated": False},
    "tools": {"allow": ["read", "http"], "deny": ["exec", "docker_socket"]},
    "model_calls": {"route_via": "clawproxy", "allowed_providers": ["anthropic"]},
    "token_binding": {"cst_scope_hash_required": True, "cst_policy_hash_pinning": "required"},
    "validation": {"fail_closed_on_missing_wpc": True, "fail_closed_on_hash_mismatch": True},
}


def finops_urm(job_id: str, wpc_hash: str, scope_hash: str) -> dict[str, Any]:
    """The demo's run manifest: a read-only finance close as job ``job_id``, under the
    WPC ``wpc_hash``, its token's scope hash ``scope_hash`` pinned."""
    return {
        "urm_version": "1",
        "job": {
            "job_id": job_id,
            "requested_by": "user:alice",
            "approved_by": ["user:finops-lead"],
            "approval_ref": "ticket:FIN-1842",
        },
        "policy": {
            "wpc_hash_b64u": wpc_hash,
            "cst_scope_hash": scope_hash,
            "policy_hash_pinning": True,
        },
        "execution": {
            "agent_runtime": "OpenClaw",
            "tool_profile": "finops-readonly",
            "sandbox_mode": "all",
            "model_routing": "via clawproxy",
        },
        "inputs": [{"name": "ledger_export.csv", "sha256": "ab" * 32}],
        "expected_outputs": [{"name": "close_report.md", "sha256": None}],
        "retention": {"proof_bundle_days": 180, "notes": "demo"},
    }


@dataclass
class _Runner:
    settings: Settings
    workdir: Path
    console: Console
    quiet: bool
    log: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self, *args: str, expect: int = 0, stdin: str | None = None, show: bool = True
    ) -> str:
        env = dict(os.environ)
        env["CLAW_LEDGER_STATE_DIR"] = str(self.settings.state_dir)
        show = show and not self.quiet
        if show:
            # emoji off: a did:key argument would print as "did🔑z6Mk…"
            self.console.print(
                f"[bold cyan]$ claw-ledger {' '.join(args)}[/]", highlight=False, emoji=False
            )
        proc = subprocess.run(
            [sys.executable, "-m", "claw_ledger", *args],
            cwd=self.workdir,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        self.log.append({"args": list(args), "exit": proc.returncode})
        if show:
            for stream in (proc.stdout, proc.stderr):
                if stream.strip():
                    self.console.print(stream.rstrip(), highlight=False, markup=False, emoji=False)
        if proc.returncode != expect:
            raise DemoFailed(
                f"`claw-ledger {' '.join(args)}` exited {proc.returncode}, expected {expect}:\n"
                f"{proc.stderr.strip()}"
            )
        return proc.stdout

    def step(self, title: str) -> None:
        if not self.quiet:
            self.console.print(Rule(f"[bold]{title}"))


def require_schema(settings: Settings) -> None:
    """Raise MigrationError, in one line, unless the database is at the newest migration.

    Without it, the first step (``init``) fails on a missing table with a
    traceback that does not say what to do.
    """
    import asyncio

    from claw_ledger.config import effective_database_url
    from storage.migrate import check_schema, schema_version

    url = effective_database_url(settings)

    async def check() -> None:
        if await schema_version(url) is None:
            raise MigrationError("the ledger database has no schema yet: run `claw-ledger migrate`")
        try:
            await check_schema(url)
        except MigrationError as exc:
            raise MigrationError(
                f"{exc.message}: {exc.hint}" if exc.hint else exc.message
            ) from None

    asyncio.run(check())


def run_demo(settings: Settings, *, as_json: bool = False) -> dict[str, Any]:
    """Play the scenario against a running ledger; raise DemoFailed on surprise."""
    require_schema(settings)
    console = Console(emoji=False)
    with tempfile.TemporaryDirectory(prefix="claw-demo-") as tmp:
        run = _Runner(settings, Path(tmp), console, quiet=as_json)
        summary = _scenario(run, Path(tmp))
    if as_json:
        console.print_json(json.dumps(summary))
    return summary


def _scenario(run: _Runner, work: Path) -> dict[str, Any]:
    job = f"demo-{uuid.uuid4().hex[:8]}"
    keys_dir = run.settings.state_dir / "keys"

    run.step("1. Trust root and keys: every signer and its role is recorded on the ledger")
    run("init")
    registered = json.loads(run("keys", "list", "--json", show=False))["registry"]
    known = {row["name"] for row in registered if not row["revoked"]}
    for name, role in ROLES.items():
        if not (keys_dir / f"{name}.key").exists():
            run("keys", "new", name)
        if name not in known:
            run("keys", "register", name, "--role", role, "--key", "admin")

    run.step("2. Work Policy Contract: signed, hash-addressed policy")
    (work / "policy.json").write_text(json.dumps(WPC, indent=2))
    wpc_hash = policy_hash_b64u(WPC)
    run("wpc", "hash", "policy.json")
    existing = json.loads(run("wpc", "list", "--json", show=False))
    rows = existing if isinstance(existing, list) else existing.get("policies", [])
    if not any(r.get("policy_hash_b64u") == wpc_hash for r in rows):
        run("wpc", "publish", "policy.json", "--key", "policy-admin")
    run("wpc", "get", wpc_hash, "--verify")

    run.step(f"3. Run manifest for job {job}, approved by someone other than the requester")
    claims = {
        "sub": "agent:finops",
        "aud": "clawproxy",
        "scope": ["proxy:call:anthropic", "tools:read"],
        "policy_hash_b64u": wpc_hash,
        "mission_id": job,
    }
    urm = finops_urm(job, wpc_hash, token_scope_hash_b64u(claims))
    (work / "job.urm.json").write_text(json.dumps(urm, indent=2))
    run("urm", "approve", "job.urm.json", "--key", "approver", "-o", "approval.json")
    run("urm", "submit", "job.urm.json", "--approval", "approval.json", "--key", "runtime")

    run.step("4. Scoped token pinned to the WPC and bound to the job (only its hash is stored)")
    token = (
        run(
            "cst",
            "issue",
            "--sub",
            "agent:finops",
            "--aud",
            "clawproxy",
            "--scope",
            "proxy:call:anthropic",
            "--scope",
            "tools:read",
            "--ttl",
            "15m",
            "--policy",
            wpc_hash,
            "--job",
            job,
            "--key",
            "issuer",
        )
        .strip()
        .splitlines()[-1]
    )
    run("cst", "inspect", "-", stdin=token)

    run.step("5. The run: each call authorized first, two model calls receipted by the gateway")
    run("run", "start", "--job", job, "--token", "-", "--key", "runtime", stdin=token)
    ask = ["authorize", "--token", "-", "--job", job, "--key", "authorizer"]
    run(*ask, "--tool", "read", "--nonce", f"{job}-1", stdin=token)
    run(*ask, "--tool", "exec", "--nonce", f"{job}-2", stdin=token, expect=1)
    run(*ask, "--model", "anthropic/claude-sonnet-4", "--nonce", f"{job}-3", stdin=token)
    model_call = ["receipt", "record", "--job", job, "--provider", "anthropic"]
    model_call += ["--model", "claude-sonnet-4", "--key", "gateway"]
    for n, (prompt, answer) in enumerate(
        [("Summarise the ledger export.", "Totals reconcile."), ("Draft the report.", "Done.")],
        start=1,
    ):
        (work / f"req{n}.json").write_text(json.dumps({"prompt": prompt}))
        (work / f"resp{n}.json").write_text(json.dumps({"completion": answer}))
        run(
            *model_call,
            *("--request", f"req{n}.json", "--response", f"resp{n}.json"),
            *("--tokens-input", str(100 * n), "--tokens-output", str(20 * n)),
            *("--latency-ms", str(400 + n)),
        )
    run.step("6. Kill switch: the operator halts the job; the next model call is refused")
    run("halt", f"job:{job}", "--reason", "demo: incident drill", "--key", "operator")
    run("halts")  # the job's token is revoked with the halt
    # negative proof: the denial is a signed event on the job's timeline
    run(*ask, "--tool", "read", "--nonce", f"{job}-4", stdin=token, expect=1)
    (work / "late.json").write_text(json.dumps({"prompt": "one more thing"}))
    run(*model_call, "--request", "late.json", "--response", "late.json", expect=1)

    run.step("7. Completion: outputs recorded with their SHA-256, checked against the URM")
    (work / "close_report.md").write_text("# Close report\nAll accounts reconcile.\n")
    run(
        "run",
        "complete",
        "--job",
        job,
        "--output",
        "close_report.md=close_report.md",
        "--key",
        "runtime",
    )

    run.step(f"8. The timeline of job:{job} and the refusals")
    run("timeline", "--stream", f"job:{job}")
    run("quarantine", "--limit", "5")

    run.step("9. Transparency log: signed checkpoints, and a proof checked offline")
    checkpoint = _transparency(run, job)

    run.step("10. The audit: every row, chain, signature, projection and the log")
    run("audit")
    return {
        "job": job,
        "policy_hash_b64u": wpc_hash,
        "checkpoint": checkpoint,
        "commands": run.log,
    }


def _transparency(run: _Runner, job: str) -> dict[str, Any]:
    """Start the checkpointer (detached, idempotent), prove the run's completion is in the
    log, and verify that proof offline against the ledger key; the latest checkpoint."""
    run("checkpointer", "start", "--key", "ledger")
    timeline = json.loads(run("timeline", "--stream", f"job:{job}", "--json", show=False))
    completed = next(r for r in timeline["rows"] if r["event_type"] == "run.completed")
    run("prove", "inclusion", completed["event_id"], "--wait", "60", "-o", "proof.json")
    registry = json.loads(run("keys", "list", "--json", show=False))["registry"]
    ledger_did = next(r["did"] for r in registry if r["name"] == "ledger" and not r["revoked"])
    latest: dict[str, Any] = json.loads(run("checkpoint", "latest", "--json", show=False))
    run("verify", "proof.json", "--ledger-key", ledger_did, "--origin", latest["origin"])
    run("checkpoint", "latest")
    return latest
