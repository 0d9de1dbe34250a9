"""``claw-ledger publish``: sign and publish one event."""

from __future__ import annotations

import json
import sys

import click

from claw_ledger.cli.common import (
    json_option,
    key_option,
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
    text = sys.stdin.read() if body_ref == "-" else _read(body_ref)
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ConfigError("--body must be a JSON object")
    key = resolve_key(key_ref)
    outcome = sign_and_publish(key, event_type, stream, body, wait=not no_wait, timeout=timeout)
    report_publish(outcome, as_json, f"{event_type} {outcome.event_id} {outcome.status}")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
