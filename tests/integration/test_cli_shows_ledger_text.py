"""The CLI shows ledger data as text: exactly as stored, control characters
written out.

Event bodies, key names and quarantine details are written by whoever signs or
sends them. Read as rich markup, ``[/x]`` raised and stopped the command (the
security team's timeline, the responders' quarantine view), ``[black]`` hid
what followed, and every ``did:key:`` printed as ``did🔑``. Sent to a terminal
as they are, escape sequences hid words, rewrote lines or set the title.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest

from ledger.crypto import KeyPair
from ledger.roles import Role
from tests.fixtures_ledger import LedgerHarness, run_cli

pytestmark = pytest.mark.integration

#: markup that raises, markup that styles, an emoji code; short enough that the
#: timeline's summary (24 characters a value) shows it whole
TRICKY = "[/x][bold]b[/bold] :key:"


#: conceal on/off and a carriage return: on a terminal "x" then "z" over it
ESCAPES = "x\x1b[8mhid\x1b[0m\rz"
ESCAPES_SHOWN = "x\\u001b[8mhid\\u001b[0m\\u000dz"


def _wide(env: dict[str, str]) -> dict[str, str]:
    """A terminal wide enough that no cell wraps: the text is compared whole."""
    return env | {"COLUMNS": "500"}


def test_timeline_table_shows_a_body_verbatim(
    cli_env: dict[str, str], running_ledger: LedgerHarness
) -> None:
    target = f"job:plain-{uuid.uuid4().hex[:8]}"
    asyncio.run(running_ledger.halt(target, TRICKY))

    table = run_cli(_wide(cli_env), "timeline", "--stream", f"halt:{target}")

    assert table.returncode == 0, table.stderr
    assert TRICKY in table.stdout
    assert "🔑" not in table.stdout


def test_key_registry_table_shows_names_and_dids_verbatim(
    cli_env: dict[str, str], running_ledger: LedgerHarness
) -> None:
    key = KeyPair.generate("plain")
    name = f"[black on black]{uuid.uuid4().hex[:6]}[/] {TRICKY}"
    body = {"did": key.did, "name": name, "roles": [Role.OPERATOR.value]}
    verdict = asyncio.run(
        running_ledger.publish(running_ledger.admin, "key.registered", f"key:{key.did}", body)
    )
    assert verdict["status"] == "committed", verdict

    table = run_cli(_wide(cli_env), "keys", "list")

    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if key.did in line)
    assert name in row
    assert "🔑" not in table.stdout


def test_quarantine_table_shows_an_unsigned_senders_text_verbatim(
    cli_env: dict[str, str], running_ledger: LedgerHarness
) -> None:
    version = f"[/{uuid.uuid4().hex[:8]}]"
    envelope = {
        "envelope_version": version,
        "envelope_type": "ledger_event",
        "payload": {"event_type": "agent.halted"},
        "payload_hash_b64u": "A" * 43,
        "hash_algorithm": "SHA-256",
        "signature_b64u": "A" * 86,
        "algorithm": "Ed25519",
        "signer_did": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        "issued_at": "2026-01-01T00:00:00.000Z",
    }
    before = len(asyncio.run(running_ledger.wait_quarantine_count(0)))
    asyncio.run(running_ledger.publish_raw(json.dumps(envelope).encode()))
    rows = asyncio.run(running_ledger.wait_quarantine_count(before + 1))
    assert any(version in row["detail"] for row in rows)

    table = run_cli(
        _wide(cli_env), "quarantine", "--reason", "UNKNOWN_ENVELOPE_VERSION", "--limit", "500"
    )

    assert table.returncode == 0, table.stderr
    assert f"envelope_version '{version}'" in table.stdout


def test_escape_sequences_in_a_halt_are_written_out_not_sent(
    cli_env: dict[str, str], running_ledger: LedgerHarness
) -> None:
    target = f"job:escapes-{uuid.uuid4().hex[:8]}"
    asyncio.run(running_ledger.halt(target, ESCAPES))

    halts = run_cli(cli_env, "halts")
    timeline = run_cli(_wide(cli_env), "timeline", "--stream", f"halt:{target}")
    state = run_cli(cli_env, "state", "at", datetime.now(UTC).isoformat())

    for result in (halts, timeline, state):
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert f"  why            {ESCAPES_SHOWN}\n" in halts.stdout
    assert ESCAPES_SHOWN in timeline.stdout
    assert f"  halted   {target}  ({ESCAPES_SHOWN})\n" in state.stdout
    # the JSON keeps the text exactly
    document = json.loads(run_cli(cli_env, "halts", "--json").stdout)
    assert ESCAPES in [halt["reason"] for halt in document]
