"""The CLI integration tests' helpers: ``Cli`` runs commands, and a WPC, URM and token."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from ledger.wpc import policy_hash_b64u
from tests.core._helpers import example_urm

from ._support import WPC_EXAMPLE


class Cli:
    def __init__(self, env: dict[str, str], cwd: Path, database_url: str) -> None:
        self.env = env
        self.cwd = cwd
        self.database_url = database_url

    def __call__(self, *args: str, stdin: str | None = None, ok: bool = True) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "claw_ledger", *args],
            env=self.env,
            cwd=self.cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert result.returncode == 0, f"{args}: {result.stderr}"
        return result

    def refused(self, code: str, *args: str, stdin: str | None = None) -> None:
        """The command exits 1 with ``code`` and the ledger records no new event."""
        before = self.events()
        result = self(*args, stdin=stdin, ok=False)
        assert result.returncode == 1, f"{args}: exit {result.returncode}: {result.stderr}"
        assert code in result.stderr, result.stderr
        assert self.events() == before, "a refused command recorded an event"

    def events(self) -> int:
        async def count() -> int:
            conn = await asyncpg.connect(self.database_url)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM events"))
            finally:
                await conn.close()

        return asyncio.run(count())


def _wpc(tmp_path: Path, label: str) -> tuple[Path, str]:
    document = dict(WPC_EXAMPLE, purpose=f"integration {label} {uuid.uuid4()}")
    path = tmp_path / f"{label}.wpc.json"
    path.write_text(json.dumps(document, indent=2))
    return path, policy_hash_b64u(document)


def _urm(path: Path, job: str, wpc: str, scope_hash: str, outputs: list[dict[str, Any]]) -> Path:
    document = example_urm(
        job,
        wpc,
        scope_hash,
        inputs=[{"name": "ledger_export.csv", "sha256": hashlib.sha256(b"a,b\n").hexdigest()}],
        expected_outputs=outputs,
        retention={"proof_bundle_days": 180, "notes": "integration"},
    )
    path.write_text(json.dumps(document, indent=2))
    return path


def _issue(cli: Cli, job: str, wpc: str, sub: str = "agent:alpha") -> tuple[str, str]:
    scopes = shlex.split("--scope proxy:call:anthropic --scope tools:read --ttl 15m")
    result = cli(
        *("cst", "issue", "--sub", sub, "--aud", "clawproxy", *scopes),
        *("--policy", wpc, "--job", job, "--key", "issuer", "--json"),
    )
    issued = json.loads(result.stdout)
    return issued["token"], issued["token_scope_hash_b64u"]
