"""Command-line parsing pinned by past bugs (no servers needed)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from claw_ledger.cli import cli

# a real policy hash shape that begins with "-" (base64url allows it)
DASH_HASH = "-dQrWUVjI4IB_g8arwpt6G8IKSBswYd3y0HQbXMgbK4"


@pytest.mark.parametrize(
    "args",
    [
        ["wpc", "get", DASH_HASH, "--json"],
        ["wpc", "revoke", DASH_HASH, "--reason", "r", "--key", "nobody"],
        ["wpc", "supersede", DASH_HASH, DASH_HASH, "--key", "nobody"],
        ["pulse", "show", DASH_HASH, "--json"],
    ],
)
def test_policy_hash_beginning_with_dash_is_the_hash_argument(
    args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("CLAW_LEDGER_DATABASE_URL", "postgresql://x@127.0.0.1:1/x")
    monkeypatch.setenv("CLAW_LEDGER_KAFKA", "127.0.0.1:1")
    monkeypatch.setenv("CLAW_LEDGER_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, args)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "No such option" not in output
    assert result.exit_code == 2  # an environment error (no server), not a usage error
