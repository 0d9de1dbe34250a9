"""The kill switch tests' driver: ``Flow``, a ledger of its own driven through the CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

from ledger.wpc import policy_hash_b64u
from storage.projection_queries import open_connection
from tests.core._helpers import example_urm
from tests.fixtures_ledger import CLAW_LEDGER, LedgerHarness

_BASE_WPC: dict[str, Any] = {
    "wpc_version": "1",
    "tools": {"default": "deny", "allow": ["read_file"]},
    "model_calls": {"route_via": "clawproxy", "allowed_providers": ["anthropic"]},
}


class Flow:
    """A ledger of its own (its halts cover `*`), driven through the CLI."""

    def __init__(self, ledger: LedgerHarness, work: Path) -> None:
        self.ledger = ledger
        self.work = work

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLAW_LEDGER, *args],
            env=self.ledger.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=self.work,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-2000:])
        return result.stdout

    def refused(self, code: str, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 1, (args, result.stdout[-2000:], result.stderr[-2000:])
        assert code in result.stderr, (code, result.stderr)
        return result.stderr

    def wpc(self, label: str, **extra: Any) -> str:
        document = {**_BASE_WPC, "purpose": f"kill switch {label} {uuid.uuid4()}", **extra}
        path = self.work / f"{label}.wpc.json"
        path.write_text(json.dumps(document))
        self.ok("wpc", "publish", str(path), "--key", "policy-admin")
        return policy_hash_b64u(document)

    def token(self, job: str, sub: str, wpc: str | None) -> dict[str, Any]:
        args = ["cst", "issue", "--sub", sub, "--aud", "clawproxy", "--scope", "tools:read"]
        args += ["--ttl", "15m", "--job", job, "--key", "issuer", "--json"]
        if wpc is not None:
            args += ["--policy", wpc]
        return dict(json.loads(self.ok(*args)))

    def started_job(self, sub: str, wpc: str) -> tuple[str, dict[str, Any]]:
        """A job approved under ``wpc`` and started with a token pinned to it."""
        job = f"job-{uuid.uuid4().hex[:8]}"
        token = self.token(job, sub, wpc)
        urm = example_urm(
            job,
            wpc,
            token["token_scope_hash_b64u"],
            inputs=[{"name": "in.csv", "sha256": hashlib.sha256(b"a\n").hexdigest()}],
        )
        (self.work / f"{job}.urm.json").write_text(json.dumps(urm))
        approval = self.work / f"{job}.approval.json"
        self.ok("urm", "approve", f"{job}.urm.json", "--key", "approver", "-o", str(approval))
        self.ok("urm", "submit", f"{job}.urm.json", "--approval", str(approval), "--key", "runtime")
        self.ok(
            "run", "start", "--job", job, "--token", "-", "--key", "runtime", stdin=token["token"]
        )
        return job, token

    def receipt(self, job: str) -> list[str]:
        (self.work / "req.json").write_text('{"prompt": "p"}')
        return [
            *("receipt", "record", "--job", job, "--provider", "anthropic", "--model", "m"),
            *("--request", "req.json", "--response", "req.json", "--key", "gateway"),
        ]

    def halts(self, *args: str) -> dict[str, dict[str, Any]]:
        return {row["target"]: row for row in json.loads(self.ok("halts", "--json", *args))}

    async def row(self, table: str, key_column: str, key: str) -> dict[str, Any]:
        assert self.ledger.settings.database_url
        conn = await open_connection(self.ledger.settings.database_url)  # jsonb decoded
        try:
            record = await conn.fetchrow(f"SELECT * FROM {table} WHERE {key_column} = $1", key)
        finally:
            await conn.close()
        assert record is not None, (table, key)
        return dict(record)
