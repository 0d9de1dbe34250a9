"""Bad input on the command line: a one-line error and exit 2, never a traceback,
and nothing written where it should not be. Everything here is refused before
any server is asked, so the servers are nowhere (``offline_cli_env``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.fixtures_ledger import run_cli

_PUBLISH = ("publish", "--type", "agent.halted", "--stream", "halt:job:x", "--key", "operator")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"\xff\xfe{}", "error: --body is not valid JSON: 'utf-8' codec can't decode byte 0xff"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "error: --body nests too deeply"),
        (b'{"target": "job:x", "target": "job:y"}', "duplicate key 'target'"),
        (b'{"n": NaN}', "error: --body is not valid JSON"),
        (b"[1, 2]", "error: --body must be a JSON object"),
    ],
    ids=["not-utf8", "too-deep", "duplicate-key", "nan", "not-an-object"],
)
def test_publish_refuses_a_bad_body(
    offline_cli_env: dict[str, str], tmp_path: Path, content: bytes, error: str
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(content)
    result = run_cli(offline_cli_env, *_PUBLISH, "--body", str(body), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert error in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("publish", *_PUBLISH[1:], "--body", "FILE"),
        ("wpc", "hash", "FILE"),
        ("wpc", "diff", "FILE", "FILE"),
        ("urm", "hash", "FILE"),
        ("simulate", "--policy", "FILE"),
        ("verify", "FILE"),
    ],
    ids=lambda command: " ".join(command[:2]),
)
@pytest.mark.parametrize("missing", [True, False], ids=["missing", "a-directory"])
def test_a_file_that_cannot_be_read_is_named(
    offline_cli_env: dict[str, str], tmp_path: Path, command: tuple[str, ...], missing: bool
) -> None:
    path = tmp_path / "nothing.json" if missing else tmp_path
    result = run_cli(
        offline_cli_env, *(str(path) if word == "FILE" else word for word in command), timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    if missing:
        assert f"error: cannot read {path}: No such file or directory" in result.stderr
    else:  # click's check of a FILE argument says it first where there is one
        assert str(path) in result.stderr and "is a directory" in result.stderr.lower()


@pytest.mark.parametrize("name", ["../outside", "a/b", "", ".hidden", "x" * 65])
def test_keys_new_refuses_a_name_that_is_not_a_file_name(
    offline_cli_env: dict[str, str], name: str
) -> None:
    state_dir = Path(offline_cli_env["CLAW_LEDGER_STATE_DIR"])
    before = sorted(state_dir.rglob("*"))
    result = run_cli(offline_cli_env, "keys", "new", name, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Invalid value for 'NAME'" in result.stderr
    assert sorted(state_dir.rglob("*")) == before


def test_serve_on_a_port_in_use_says_so_before_starting(offline_cli_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(offline_cli_env, "serve", "--port", str(port), "--no-authorize")
    assert result.returncode == 2, result.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Application startup" not in result.stderr  # refused before anything started
    assert "claw-ledger API on" not in result.stderr


def test_serve_on_an_address_that_does_not_resolve_says_so(
    offline_cli_env: dict[str, str],
) -> None:
    result = run_cli(offline_cli_env, "serve", "--host", "256.256.256.256", "--no-authorize")
    assert result.returncode == 2, result.stderr
    assert "error: cannot listen on 256.256.256.256:8088:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [("timeline",), ("quarantine",), ("checkpoint", "list")],
    ids=lambda command: " ".join(command),
)
@pytest.mark.parametrize("after", ["-1", str(2**63)])
def test_a_cursor_outside_a_bigint_is_a_usage_error(
    offline_cli_env: dict[str, str], command: tuple[str, ...], after: str
) -> None:
    """Refused by the option, not by the database as a DataError traceback."""
    result = run_cli(offline_cli_env, *command, "--after", after, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Invalid value for '--after'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command", [("keys", "new", "x"), ("processor", "start"), ("init",)], ids=" ".join
)
def test_a_state_dir_that_is_a_file_is_named(
    offline_cli_env: dict[str, str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    state_dir = tmp_path / "state"
    state_dir.write_text("not a directory")
    env = offline_cli_env | {"CLAW_LEDGER_STATE_DIR": str(state_dir)}
    result = run_cli(env, *command, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"hint: the state dir {state_dir} must be a directory this user can write" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "command",
    [
        ("timeline", "--since", "2026-11-01T00:00:00"),
        ("replay", "--until", "2026-11-01T00:00:00"),
        ("simulate", "--policy", "AAAA", "--since", "2026-11-01T00:00:00"),
        ("simulate", "--shadow", "--until", "2026-11-01T00:00:00"),
    ],
    ids=["timeline", "replay", "simulate", "simulate-shadow"],
)
def test_a_time_without_its_zone_is_a_usage_error_in_every_command(
    offline_cli_env: dict[str, str], command: tuple[str, ...]
) -> None:
    """Taken as UTC by one command and refused by the next, the same time would
    select different events depending on where it was typed."""
    result = run_cli(offline_cli_env, *command, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "needs a time zone" in result.stderr
    option = next(arg for arg in command if arg in ("--since", "--until"))
    assert f"Invalid value for '{option}'" in result.stderr  # which of the two it was
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("timeline", "--since", "9999-12-31T23:59:59-01:00"),
        ("timeline", "--until", "0001-01-01T00:00:00+01:00"),
        ("replay", "--until", "9999-12-31T23:59:59-01:00"),
        ("state", "at", "9999-12-31T23:59:59-01:00"),
        ("simulate", "--shadow", "--since", "0001-01-01T00:00:00+01:00"),
    ],
    ids=["timeline-since", "timeline-until", "replay", "state-at", "simulate"],
)
def test_a_time_outside_the_years_utc_can_hold_is_a_usage_error(
    offline_cli_env: dict[str, str], command: tuple[str, ...]
) -> None:
    """Valid RFC 3339 whose UTC falls in the year 10000 or 0: it overflowed in the
    query (a traceback) instead of being refused as the argument it is."""
    result = run_cli(offline_cli_env, *command, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "out of range: in UTC it falls outside the years 1 to 9999" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "target", ["job:a\tb", "sub:agent:x\n", "job:" + "j" * 301, "sub:", "host:x", "**"]
)
def test_a_halt_target_the_ledger_would_refuse_is_a_usage_error(
    offline_cli_env: dict[str, str], target: str
) -> None:
    """A tab or a newline passed the CLI's check (it looked for spaces only), was
    signed, sent and quarantined: exit 1 after a round trip, for a typing error."""
    result = run_cli(
        offline_cli_env, "halt", target, "--reason", "drill", "--key", "operator", timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "Invalid value for TARGET" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (("quarantine", "--reason", "UNKNOWN_SIGNR"), "did you mean UNKNOWN_SIGNER"),
        (("quarantine", "--reason", "NOPE"), "'NOPE' is not a known reason code"),
        (("timeline", "--type", "agent.halt"), "did you mean agent.halted?"),
        (("timeline", "--type", "nope.nope"), "docs/architecture.md#event-types"),
        (("replay", "--type", "token.issue"), "did you mean token.issued"),
    ],
    ids=["reason-typo", "reason-unknown", "type-typo", "type-unknown", "replay-type"],
)
def test_a_filter_that_can_match_nothing_is_a_usage_error(
    offline_cli_env: dict[str, str], command: tuple[str, ...], error: str
) -> None:
    """An unknown type or reason code would print an empty table: "nothing happened"."""
    result = run_cli(offline_cli_env, *command, timeout=60)
    assert result.returncode == 2, result.stderr
    assert error in result.stderr
    assert "Traceback" not in result.stderr


def test_a_filter_name_is_taken_in_any_case() -> None:
    from claw_ledger.cli.common import EVENT_TYPE, REASON_CODE

    assert REASON_CODE.convert("unknown_signer", None, None) == "UNKNOWN_SIGNER"
    assert EVENT_TYPE.convert("Agent.Halted", None, None) == "agent.halted"


def test_a_token_is_read_from_a_file_stdin_or_the_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from claw_ledger.cli.common import read_token

    token = "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2ln"
    (tmp_path / "token.jwt").write_text(token + "\n")
    monkeypatch.chdir(tmp_path)
    assert read_token("token.jwt") == token
    assert read_token(str(tmp_path / "token.jwt")) == token
    assert read_token(f" {token}\n") == token
    # no file name is that long: taken as the (malformed) token, not an OSError
    assert read_token("a" * 5000) == "a" * 5000
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(token.encode() + b"\n")))
    assert read_token("-") == token
