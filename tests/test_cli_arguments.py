"""Command-line parsing pinned by past bugs (no servers needed)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from claw_ledger.cli import cli

# a real policy hash shape that begins with "-" (base64url allows it)
DASH_HASH = "-dQrWUVjI4IB_g8arwpt6G8IKSBswYd3y0HQbXMgbK4"
#: one with an "h" in it: read as short options, that is -h, and the command
#: printed its help and exited 0 without doing anything (a flaky CI test found it)
DASH_HASH_WITH_H = "-aar6fxNKeSm5c7GgMHOF-oQ5E_2LhLtM-hltQmx4BE"


@pytest.mark.parametrize(
    "args",
    [
        ["wpc", "get", DASH_HASH, "--json"],
        ["wpc", "get", DASH_HASH_WITH_H],
        ["wpc", "revoke", DASH_HASH_WITH_H, "--reason", "r", "--key", "nobody"],
        ["wpc", "shadow", DASH_HASH_WITH_H, "--scope", "*", "--key", "nobody"],
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


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        (("wpc", "get"), [DASH_HASH_WITH_H], {"policy_hash": DASH_HASH_WITH_H}),
        (
            ("wpc", "get"),
            ["--verify", DASH_HASH_WITH_H, "--json"],
            {"policy_hash": DASH_HASH_WITH_H, "verify": True, "as_json": True},
        ),
        (
            ("wpc", "revoke"),
            ["--reason", "-h is not help here", DASH_HASH_WITH_H, "--key=k"],
            {"policy_hash": DASH_HASH_WITH_H, "reason": "-h is not help here", "key_ref": "k"},
        ),
        (
            ("wpc", "supersede"),
            [DASH_HASH_WITH_H, "--key", "k", DASH_HASH],
            {"old": DASH_HASH_WITH_H, "new": DASH_HASH, "key_ref": "k"},
        ),
        (
            ("wpc", "diff"),
            ["old.json5", DASH_HASH_WITH_H],
            {"old": "old.json5", "new": DASH_HASH_WITH_H},
        ),
        (("pulse", "show"), ["--", DASH_HASH_WITH_H], {"pulse_id": DASH_HASH_WITH_H}),
    ],
)
def test_dash_identifiers_are_arguments_in_their_order_and_options_stay_options(
    command: tuple[str, str], args: list[str], expected: dict[str, object]
) -> None:
    group = cli.get_command(click.Context(cli), command[0])
    assert isinstance(group, click.Group)
    sub = group.get_command(click.Context(group), command[1])
    assert sub is not None
    params = sub.make_context(command[1], list(args)).params
    assert {name: params[name] for name in expected} == expected


def test_a_short_option_cluster_that_is_no_identifier_is_still_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["wpc", "get", "-zz"])
    assert result.exit_code == 2
    assert "No such option: -z" in result.output + (result.stderr or "")
