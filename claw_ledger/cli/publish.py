"""``claw-ledger publish``: sign and publish one event."""

from __future__ import annotations

from typing import Any

import click

from claw_ledger.cli.common import (
    json_option,
    key_option,
    read_input,
    report_publish,
    resolve_key,
    sign_and_publish,
)
from ledger.errors import ConfigError

__all__ = ["command"]


@click.command("publish")
@click.option("--type", "event_type", required=True, help="Event type, e.g. agent.halted.")
@click.option("--stream", required=True, help="Stream, e.g. job:42 (the Kafka key).")
@click.option("--body", "body_ref", required=True, metavar="FILE|-", help="JSON body.")
@key_option()
@click.option("--no-wait", is_flag=True, help="Return once Kafka has it; skip the verdict.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for a verdict.")
@json_option()
def command(
    event_type: str,
    stream: str,
    body_ref: str,
    key_ref: str,
    no_wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Sign an event with KEY and publish it; wait for the ledger's verdict.

    Exit 0 when committed, 1 when the ledger quarantined it (the reason code is
    printed), 2 on bad arguments.

    \b
    Example:
      echo '{"target":"job:42","reason":"incident 7"}' |
        claw-ledger publish --type agent.halted --stream halt:job:42 --body - --key operator
    """
    body = _body(read_input(body_ref))
    key = resolve_key(key_ref)
    outcome = sign_and_publish(key, event_type, stream, body, wait=not no_wait, timeout=timeout)
    report_publish(outcome, as_json, f"{event_type} {outcome.event_id} {outcome.status}")


def _body(data: bytes) -> dict[str, Any]:
    """The --body object: strict JSON (UTF-8, no duplicate keys, no NaN), as the
    ledger parses what it verifies."""
    from ledger.canonical import parse_json_strict

    try:
        body = parse_json_strict(data)
    except RecursionError:
        raise ConfigError("--body nests too deeply") from None
    except ValueError as exc:  # bad UTF-8 and duplicate keys too
        raise ConfigError(f"--body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ConfigError("--body must be a JSON object")
    return body
