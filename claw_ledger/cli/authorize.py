"""``claw-ledger authorize``: may this call run now? One decision, signed and recorded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    json_option,
    read_input,
    resolve_key,
    run_async,
    settings,
)

if TYPE_CHECKING:
    from claw_ledger.authorizing import AuthorizeConfig, DecisionCounters
    from ledger.authorize import CallRequest, Decision
    from ledger.crypto import KeyPair
    from ledger.errors import ReasonCode

__all__ = ["command"]

EXIT_ALLOW = 0
EXIT_DENY = 1
EXIT_USAGE = 2


def _token_from(value: str) -> str:
    if value != "-" and not Path(value).expanduser().is_file():
        raise click.BadParameter(
            f"no file {value!r}: give a file holding the token, or - for stdin"
            " (never the token itself: a command line is visible to other users)",
            param_hint="--token",
        )
    text = read_input(value if value == "-" else str(Path(value).expanduser()))
    return text.decode("utf-8", "replace").strip()


@click.command("authorize")
@click.option(
    "--token", "token_ref", required=True, metavar="FILE|-", help="The CST: a file, or - for stdin."
)
@click.option("--job", "job_id", required=True, metavar="ID", help="The job the call is for.")
@click.option("--tool", metavar="NAME", help="A tool call, by tool name.")
@click.option(
    "--model", metavar="PROVIDER/MODEL", help="A model call, e.g. anthropic/claude-sonnet."
)
@click.option("--nonce", required=True, metavar="N", help="Used once per token, ever.")
@click.option(
    "--key",
    "key_ref",
    default="authorizer",
    show_default=True,
    metavar="KEY",
    help="The authorize key (role authorizer) that signs the decision: a file or a NAME.",
)
@click.option(
    "--max-staleness",
    type=click.FloatRange(min=0.1, max=3600),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Deny (STATE_STALE) when the processor's heartbeat is older.",
)
@json_option("Print the decision as JSON.")
def command(
    token_ref: str,
    job_id: str,
    tool: str | None,
    model: str | None,
    nonce: str,
    key_ref: str,
    max_staleness: float,
    as_json: bool,
) -> None:
    """Decide whether a tool or model call of job ID may run now; record the decision.

    Checks, in order: the ledger state is fresh, the token's signature and
    issuer, expiry, revocation, the job binding, the policy pin (the job's
    active WPC), the scope hash, the WPC's tool and model rules, halts, and
    the nonce. The decision is published as a signed call.authorized or
    call.denied event before the command exits.

    Exit 0: allow; 1: deny (the reason code says why); 2: usage or setup error.

    \b
    Examples:
      claw-ledger authorize --token cst.txt --job job-42 --tool read --nonce 7f3a
      cat cst.txt | claw-ledger authorize --token - --job job-42 \\
          --model anthropic/claude-sonnet --nonce 7f3b --json
    """
    from claw_ledger.authorizing import AuthorizeConfig
    from ledger.authorize import Action, AuthorizeSettings, CallRequest

    if (tool is None) == (model is None):
        raise click.UsageError("give exactly one of --tool NAME or --model PROVIDER/MODEL")
    try:
        if tool is not None:
            action = Action.for_tool(tool)
        else:
            assert model is not None
            provider, slash, name = model.partition("/")
            if not slash:
                raise ValueError(f"--model {model!r}: use PROVIDER/MODEL")
            action = Action.for_model(provider, name)
        request = CallRequest(_token_from(token_ref), job_id, action, nonce)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    key = resolve_key(key_ref)
    config = AuthorizeConfig.from_settings(
        settings(), settings=AuthorizeSettings(max_staleness_seconds=max_staleness)
    )
    decision, counters, refusal = run_async(_decide_once(config, key, request))
    recorded = counters.recorded == 1
    if refusal is not None and refusal[0] is not decision.reason_code:
        # a deny for another reason: its record still goes to quarantine, not the ledger
        echo(f"warning: {refusal[0].value}: {refusal[1]}", err=True)
    if as_json:
        # recorded: on Kafka, for the ledger to commit; a refused signer's record is not
        emit_json(decision.to_dict() | {"recorded": recorded and refusal is None})
    else:
        echo(f"{decision.decision} {decision.reason_code}: {decision.detail}")
        echo(f"decision {decision.decision_id}", err=True)
    if not recorded:
        # fail closed: a call must never run without its signed trace
        echo("error: the decision could not be recorded on Kafka: deny", err=True)
    raise SystemExit(EXIT_ALLOW if decision.allowed and recorded else EXIT_DENY)


async def _decide_once(
    config: AuthorizeConfig, key: KeyPair, request: CallRequest
) -> tuple[Decision, DecisionCounters, tuple[ReasonCode, str] | None]:
    """A one-shot service: load the state, decide, record the decision, stop."""
    from claw_ledger.authorizing import AuthorizeService

    service = AuthorizeService(config, key)
    await service.start()
    try:
        decision = await service.decide(request)
        refusal = service.recorder_refusal()
    finally:
        await service.stop()
    return decision, service.counters, refusal
