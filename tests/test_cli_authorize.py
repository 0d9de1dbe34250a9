"""``claw-ledger authorize`` refuses a bad request (exit 2) before any server is asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from claw_ledger.cli import cli


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "cst.txt"
    path.write_text("a.b.c\n")
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "exactly one of --tool"),
        (("--tool", "read", "--model", "a/b"), "exactly one of --tool"),
        (("--model", "anthropic"), "PROVIDER/MODEL"),
        (("--tool", "two words"), "no whitespace"),
    ],
)
def test_a_bad_action_is_a_usage_error(
    token_file: Path, extra: tuple[str, ...], message: str
) -> None:
    args = ["authorize", "--token", str(token_file), "--job", "j", "--nonce", "n", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_the_token_is_a_file_or_stdin_never_an_argument(tmp_path: Path) -> None:
    args = ["authorize", "--token", "eyJ.eyJ.sig", "--job", "j", "--tool", "t", "--nonce", "n"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "never the token itself" in result.output


def test_a_nonce_with_outer_whitespace_is_refused(token_file: Path) -> None:
    args = ["authorize", "--token", str(token_file), "--job", "j", "--tool", "t", "--nonce", " n"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "nonce" in result.output
