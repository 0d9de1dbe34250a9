"""``claw-ledger receipt``: gateway receipts for model calls (docs/formats.md §5)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    fetch_job,
    file_argument,
    json_option,
    publish_target,
    read_input,
    resolve_key,
    signing_options,
)
from ledger.errors import ReasonCode, ReceiptError, RejectedError

__all__ = ["command"]

#: a file read as the exact bytes a model call sent or received
_BYTES = click.Path(dir_okay=False, exists=True)


@click.group("receipt")
def command() -> None:
    """Gateway receipts: record a model call of a running job, verify a receipt.

    \b
    Examples:
      claw-ledger receipt record --job job-42 --request req.json --response resp.json \\
          --provider anthropic --model claude-sonnet-4 --tokens-input 812 \\
          --tokens-output 90 --latency-ms 1234 --key gateway
      claw-ledger receipt verify receipt.json --request req.json --response resp.json
    """


@command.command("record")
@click.option("--job", "job_id", metavar="JOB", help="The running job (default: --run-id).")
@click.option(
    "--request", "request_file", required=True, type=_BYTES, help="The exact request bytes."
)
@click.option(
    "--response", "response_file", required=True, type=_BYTES, help="The exact response bytes."
)
@click.option("--provider", required=True, help="Model provider, e.g. anthropic.")
@click.option("--model", required=True, help="Model name.")
@click.option("--run-id", help="binding.run_id (default: the job id).")
@click.option(
    "--event-hash", help="binding.event_hash_b64u (default: the job's latest chain event)."
)
@click.option("--nonce", help="binding.nonce (default: random).")
@click.option("--policy-hash", help="binding.policy_hash (default: the job's WPC).")
@click.option("--token-scope-hash", help="binding.token_scope_hash_b64u (default: the job's).")
@click.option("--tokens-input", type=click.IntRange(min=0), default=0, help="Input tokens billed.")
@click.option(
    "--tokens-output", type=click.IntRange(min=0), default=0, help="Output tokens billed."
)
@click.option("--latency-ms", type=click.IntRange(min=0), default=0, help="How long the call took.")
@click.option(
    "--gateway-id",
    default="claw-ledger-gateway",
    show_default=True,
    help="Gateway name in the receipt.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    help="Also write the signed receipt envelope here.",
)
@signing_options("Gateway key: signs the receipt and the receipt.recorded event.")
def record(
    job_id: str | None,
    request_file: str,
    response_file: str,
    provider: str,
    model: str,
    run_id: str | None,
    event_hash: str | None,
    nonce: str | None,
    policy_hash: str | None,
    token_scope_hash: str | None,
    tokens_input: int,
    tokens_output: int,
    latency_ms: int,
    gateway_id: str,
    out: str | None,
    key_ref: str,
    as_json: bool,
) -> None:
    """Sign a gateway receipt over the exact request/response bytes and record it.

    The binding defaults to the job's run, its latest chain event (run.started
    prints it), its WPC and token scope hash. The ledger refuses (exit 1) a
    receipt for an unknown job, a job not running or halted, a bad receipt
    signature, a signer without the gateway role, or a binding that does not
    match the job.
    """
    from producers.gateway import build_gateway_receipt, publish_receipt_sync

    job_key = job_id or run_id
    if not job_key:
        raise click.UsageError("give --job (or --run-id)")
    job = fetch_job(job_key)
    chain = job.get("event_chain") or []
    binding = {
        "run_id": run_id or job["run_id"],
        "event_hash_b64u": event_hash or (chain[-1]["event_hash_b64u"] if chain else ""),
        "nonce": nonce or f"nonce_{secrets.token_urlsafe(16)}",
        "policy_hash": policy_hash or job["wpc_hash_b64u"],
    }
    scope = token_scope_hash or job.get("token_scope_hash_b64u")
    if scope:
        binding["token_scope_hash_b64u"] = scope
    key = resolve_key(key_ref)
    receipt = build_gateway_receipt(
        key=key,
        request=Path(request_file).read_bytes(),
        response=Path(response_file).read_bytes(),
        provider=provider,
        model=model,
        binding=binding,
        gateway_id=gateway_id,
        tokens_input=tokens_input,
        tokens_output=tokens_output,
        latency_ms=latency_ms,
    )
    if out:
        Path(out).write_bytes(receipt.to_bytes() + b"\n")
    outcome = publish_receipt_sync(publish_target(), key, job_key, receipt).check()
    receipt_id = receipt.payload["receipt_id"]
    if as_json:
        emit_json({"receipt": receipt.to_dict(), "ledger": outcome.to_dict()})
        return
    echo(f"recorded receipt {receipt_id} for job {job_key} (ledger position {outcome.position})")


@command.command("verify")
@file_argument()
@click.option(
    "--request", "request_file", type=_BYTES, help="Check request_hash_b64u against these bytes."
)
@click.option(
    "--response", "response_file", type=_BYTES, help="Check response_hash_b64u against it."
)
@json_option("Print JSON.")
def verify(file: str, request_file: str | None, response_file: str | None, as_json: bool) -> None:
    """Verify a gateway_receipt envelope offline (schema, hash, signature, bytes)."""
    from ledger.encoding import sha256_b64u
    from ledger.receipts import parse_receipt_bytes, verify_receipt_envelope

    try:
        envelope = verify_receipt_envelope(parse_receipt_bytes(read_input(file)))
        payload = envelope.payload
        for name, path in (("request", request_file), ("response", response_file)):
            if path and payload[f"{name}_hash_b64u"] != sha256_b64u(Path(path).read_bytes()):
                raise ReceiptError(
                    ReasonCode.HASH_MISMATCH, f"{name}_hash_b64u is not the hash of {path}"
                )
    except RejectedError as exc:
        if as_json:
            emit_json({"status": "FAIL", "reason_code": exc.code.value, "detail": exc.detail})
        raise
    summary = {
        "status": "PASS",
        "reason_code": "OK",
        "receipt_id": payload["receipt_id"],
        "signer_did": envelope.signer_did,
        "provider": payload["provider"],
        "model": payload["model"],
        "binding": payload["binding"],
    }
    if as_json:
        emit_json(summary)
    else:
        echo(
            f"PASS: receipt {payload['receipt_id']} ({payload['provider']}/{payload['model']})"
            f" signed by {envelope.signer_did}; binding {json.dumps(payload['binding'])}"
        )
