"""``claw-ledger policy``: OpenClaw-compatible ``check`` and ``watch``.

Same findings, JSON shape, hashes and exit codes as ``openclaw policy check``
/ ``policy watch`` (docs/formats.md §8): 0 when nothing meets
``--severity-min`` (and, for watch, the accepted attestation is current), 1 for
findings or a stale attestation, 2 for bad arguments or a runtime failure.

With ``--publish --key FILE`` every attestation is also published to the
ledger as a signed ``policy.attested`` event, and ``watch`` publishes
``policy.drift`` whenever the attestation state changes, both on the stream
``openclaw-policy:<policy hash>``.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from claw_ledger.cli.common import (
    echo,
    json_option,
    printable,
    publish_target,
    resolve_key,
    sign_and_publish,
    stack_options,
)
from ledger.errors import LedgerError, PublishError
from openclaw_policy import (
    SEVERITIES,
    PolicyCheckResult,
    js_stringify,
    parse_severity,
    run_policy_check,
)

if TYPE_CHECKING:
    from producers.outcome import PublishOutcome
    from producers.publish import PublishTarget

__all__ = ["command"]

EXIT_USAGE = 2
DEFAULT_INTERVAL_MS = 2000
MIN_INTERVAL_MS = 250
EVENT_ATTESTED = "policy.attested"
EVENT_DRIFT = "policy.drift"

Publisher = Callable[[str, str, dict[str, Any]], "PublishOutcome"]


@dataclass(frozen=True)
class _Inputs:
    policy: str | None
    config: str | None
    workspace: str | None
    severity_min: str
    expected_hash: str | None
    expected_attestation_hash: str | None

    def run(self) -> PolicyCheckResult:
        return run_policy_check(
            self.policy,
            self.config,
            self.workspace,
            expected_hash=self.expected_hash,
            expected_attestation_hash=self.expected_attestation_hash,
            severity_min=self.severity_min,
        )


def _validate_severity(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return parse_severity(value)
    except LedgerError as exc:
        raise click.BadParameter(exc.message) from exc


def _validate_interval(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int:
    if value is None:
        return DEFAULT_INTERVAL_MS
    text = value.strip()
    if not text.isdigit() or not text.isascii() or str(int(text)) != text:
        raise click.BadParameter(f"--interval-ms must be an integer >= {MIN_INTERVAL_MS}.")
    number = int(text)
    if number < MIN_INTERVAL_MS or number > 2**53 - 1:
        raise click.BadParameter(f"--interval-ms must be an integer >= {MIN_INTERVAL_MS}.")
    return number


#: what the check reads, from OpenClaw's layout: (option, is a directory, help)
_PATH_OPTIONS = (
    (
        "--policy",
        False,
        "Policy file (default: plugins.entries.policy.config.path or "
        "policy.jsonc in the workspace).",
    ),
    (
        "--config",
        False,
        "OpenClaw config (default: $OPENCLAW_CONFIG_PATH, "
        "$OPENCLAW_STATE_DIR/openclaw.json, ~/.openclaw/openclaw.json).",
    ),
    (
        "--workspace",
        True,
        "Workspace directory holding TOOLS.md (default: the default agent's workspace).",
    ),
)

_options = stack_options(
    *(
        click.option(
            flag,
            flag.removeprefix("--"),
            type=click.Path(file_okay=not directory, dir_okay=directory),
            help=help_text,
        )
        for flag, directory, help_text in _PATH_OPTIONS
    ),
    json_option("Print the JSON document only."),
    click.option(
        "--severity-min",
        default="info",
        show_default=True,
        callback=_validate_severity,
        help=f"Minimum severity that counts: {', '.join(SEVERITIES)}.",
    ),
    click.option("--expected-hash", help="Accepted policy hash (overrides the config)."),
    click.option(
        "--expected-attestation-hash",
        help="Accepted attestation hash (overrides the config).",
    ),
    click.option(
        "--publish",
        is_flag=True,
        help="Publish the attestation (and, from watch, drift) to the ledger.",
    ),
    click.option(
        "--key",
        "key_path",
        metavar="KEY",
        help="Signing key for --publish: a key file path or a key NAME.",
    ),
)


def _common_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options of check and watch; the command takes the check's as one ``inputs``."""

    @functools.wraps(command)
    def with_inputs(**options: Any) -> None:
        inputs = _Inputs(**{field.name: options.pop(field.name) for field in fields(_Inputs)})
        command(inputs=inputs, **options)

    return _options(with_inputs)


def _make_publisher(publish: bool, key_path: str | None) -> Publisher | None:
    if not publish:
        if key_path is not None:
            raise click.UsageError("--key is only used with --publish.")
        return None
    if key_path is None:
        raise click.UsageError("--publish needs --key FILE.")
    key = resolve_key(key_path)
    # resolved at the first publish (after the report is printed), then reused
    target: PublishTarget | None = None

    def publish_event(event_type: str, stream: str, body: dict[str, Any]) -> PublishOutcome:
        nonlocal target
        try:
            target = target or publish_target()
            outcome = sign_and_publish(key, event_type, stream, body, target=target)
        except LedgerError:
            raise
        except ImportError as exc:
            raise PublishError(f"publishing is not available: {exc}") from exc
        except Exception as exc:
            raise PublishError(f"publishing {event_type} failed: {exc}") from exc
        return outcome.check(event_type)

    return publish_event


def _stream(result: PolicyCheckResult) -> str:
    policy_hash = result.attestation.policy_hash if result.attestation is not None else None
    return f"openclaw-policy:{policy_hash or 'missing'}"


def _attested_body(result: PolicyCheckResult) -> dict[str, Any]:
    attestation = result.attestation
    assert attestation is not None
    return {
        "ok": attestation.ok,
        "policy_hash": attestation.policy_hash,
        "workspace_hash": attestation.workspace_hash,
        "findings_hash": attestation.findings_hash,
        "attestation_hash": attestation.attestation_hash,
        "checked_at": attestation.checked_at,
        "policy_path": attestation.policy_path,
        "findings_count": len(result.attested_findings),
    }


def _drift_body(previous: str | None, result: PolicyCheckResult) -> dict[str, Any]:
    attestation = result.attestation
    assert attestation is not None
    return {
        "previous_attestation_hash": previous,
        "attestation_hash": attestation.attestation_hash,
        "ok": attestation.ok,
        "checked_at": attestation.checked_at,
        "findings_count": len(result.attested_findings),
    }


def _emit_publish(publisher: Publisher, event_type: str, stream: str, body: dict[str, Any]) -> None:
    outcome = publisher(event_type, stream, body)
    echo(f"published {event_type} on {stream}: {js_stringify(outcome.to_dict())}", err=True)


def _publish_attestation(publisher: Publisher | None, result: PolicyCheckResult) -> None:
    if publisher is None:
        return
    if result.attestation is None:
        echo("not published: the OpenClaw config is invalid, so there is no attestation", err=True)
        return
    _emit_publish(publisher, EVENT_ATTESTED, _stream(result), _attested_body(result))


def _shown(text: str) -> str:
    """A value from the config or the policy, as markup that prints it as it is:
    rich markup escaped, control characters written out."""
    return escape(printable(text))


def _print_report(result: PolicyCheckResult) -> None:
    console = Console(highlight=False, soft_wrap=True, emoji=False)
    if result.findings:
        console.print(f"[bold]policy check:[/bold] {len(result.findings)} finding(s)")
        table = Table(show_lines=True, expand=False)
        table.add_column("severity", no_wrap=True)
        table.add_column("finding", overflow="fold")
        colours = {"error": "red", "warning": "yellow", "info": "cyan"}
        for finding in result.findings:
            where = finding.path or ""
            if finding.line is not None:
                where += f":{finding.line}"
            lines = [f"[bold]{_shown(finding.check_id)}[/bold]", _shown(finding.message)]
            if finding.oc_path is not None or where:
                lines.append(f"[dim]at {_shown(where)} {_shown(finding.oc_path or '')}[/dim]")
            if finding.requirement is not None:
                lines.append(f"[dim]rule {_shown(finding.requirement)}[/dim]")
            if finding.fix_hint:
                lines.append(f"[dim]fix: {_shown(finding.fix_hint)}[/dim]")
            table.add_row(f"[{colours[finding.severity]}]{finding.severity}[/]", "\n".join(lines))
        console.print(table)
    else:
        console.print("[bold]policy check:[/bold] no findings")
    attestation = result.attestation
    if attestation is None:
        console.print("no attestation: the OpenClaw config could not be read")
        return
    rows = [
        ("policy", f"{attestation.policy_path} {attestation.policy_hash or 'missing'}"),
        ("evidence", attestation.workspace_hash),
        ("findings", attestation.findings_hash),
        ("attestation", attestation.attestation_hash),
        ("checked at", attestation.checked_at),
    ]
    for label, value in rows:
        console.print(f"  {label:<12} {_shown(value)}")


def _fail(message: str) -> None:
    echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group(name="policy")
def command() -> None:
    """OpenClaw-compatible policy conformance: findings, evidence and attestation hashes."""


@command.command("check")
@_common_options
@click.pass_context
def check(
    ctx: click.Context,
    inputs: _Inputs,
    as_json: bool,
    publish: bool,
    key_path: str | None,
) -> None:
    """Check policy requirements and emit an audit attestation."""
    try:
        publisher = _make_publisher(publish, key_path)
        result = inputs.run()
    except LedgerError as exc:
        _fail(str(exc))
        return
    if as_json:
        echo(js_stringify(result.to_json()))
    else:
        _print_report(result)
    try:
        _publish_attestation(publisher, result)
    except LedgerError as exc:
        _fail(str(exc))
    ctx.exit(result.exit_code)


def _print_watch(result: PolicyCheckResult, as_json: bool) -> None:
    if as_json:
        echo(js_stringify(result.watch_json()))
        return
    status = result.watch_status()
    attestation = result.attestation
    current = attestation.attestation_hash if attestation else "none"
    if status == "stale":
        echo(
            f"policy watch: accepted attestation is stale (current {current}, expected "
            f"{result.expected_attestation_hash}). Review policy check output, then update the "
            "supervisor/gateway accepted attestation."
        )
    elif status == "findings":
        echo(
            f"policy watch: {len(result.findings)} finding(s); accepted attestation cannot be "
            "updated until policy check is clean."
        )
    else:
        evidence = attestation.workspace_hash if attestation else "none"
        echo(f"policy watch: clean (attestation {current}, evidence {evidence})")


@command.command("watch")
@_common_options
@click.option("--once", is_flag=True, help="Run one evaluation and exit.")
@click.option(
    "--interval-ms",
    callback=_validate_interval,
    help=f"Polling interval in milliseconds (default {DEFAULT_INTERVAL_MS}, "
    f"minimum {MIN_INTERVAL_MS}).",
)
@click.option("--max-polls", type=click.IntRange(min=1), hidden=True)
@click.pass_context
def watch(
    ctx: click.Context,
    inputs: _Inputs,
    as_json: bool,
    publish: bool,
    key_path: str | None,
    once: bool,
    interval_ms: int,
    max_polls: int | None,
) -> None:
    """Re-run the check and report drift from the accepted attestation hash."""
    previous_key: str | None = None
    previous_hash: str | None = None
    polls = 0
    exit_code = 0
    try:
        publisher = _make_publisher(publish, key_path)
        while True:
            result = inputs.run()
            exit_code = result.watch_exit_code()
            key = result.watch_key()
            if previous_key is None or key != previous_key or once:
                _print_watch(result, as_json)
                if publisher is not None:
                    # a state without an attestation (unreadable config) is reported, not published
                    if previous_key is not None and result.attestation is not None:
                        _emit_publish(
                            publisher,
                            EVENT_DRIFT,
                            _stream(result),
                            _drift_body(previous_hash, result),
                        )
                    _publish_attestation(publisher, result)
                previous_key = key
                previous_hash = result.attestation.attestation_hash if result.attestation else None
            polls += 1
            if once or (max_polls is not None and polls >= max_polls):
                break
            time.sleep(interval_ms / 1000)
    except LedgerError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass
    ctx.exit(exit_code)
