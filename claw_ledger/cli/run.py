"""``claw-ledger run``: the run lifecycle of an approved job, and its proof bundle."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    fetch_job,
    file_argument,
    json_option,
    key_option,
    publish_target,
    read_input,
    read_token,
    resolve_key,
    settings,
    sign_and_publish,
    signing_options,
)
from ledger.errors import ManifestError, ReasonCode, TokenError

__all__ = ["command"]

F = TypeVar("F", bound=Callable[..., Any])


@click.group("run")
def command() -> None:
    """Start and complete approved jobs; show them; build and verify proof bundles.

    \b
    Examples:
      claw-ledger run start --job job-42 --token "$TOKEN" --key runtime
      claw-ledger run complete --job job-42 --output report.pdf=out/report.pdf --key runtime
      claw-ledger run show job-42
      claw-ledger run bundle job-42 --key runtime -o job-42.bundle.json
      claw-ledger verify job-42.bundle.json

    Sealed bundles, signed by the ledger: `claw-ledger bundle seal|export|show`.
    """


def _binding(job: dict[str, Any]) -> dict[str, Any]:
    chain = job.get("event_chain") or []
    return {
        "run_id": job["run_id"],
        "event_hash_b64u": chain[-1]["event_hash_b64u"] if chain else None,
        "policy_hash": job["wpc_hash_b64u"],
        "token_scope_hash_b64u": job.get("token_scope_hash_b64u"),
    }


@command.command("start")
@click.option("--job", "job_id", required=True, metavar="JOB", help="The approved job.")
@click.option("--token", required=True, metavar="TOKEN|FILE|-", help="The job's CST (- is stdin).")
@signing_options("Runtime key that signs run.started.")
def start(job_id: str, token: str, key_ref: str, as_json: bool) -> None:
    """Record run.started (job, URM hash, token jti); print the receipt binding.

    Refused (exit 1): an unknown job, a token that is unknown, revoked,
    expired, bound to another job, pinned to another WPC or with another scope
    hash than the URM's, a revoked WPC, or an active halt. Only the token's
    jti is recorded.
    """
    from claw_ledger.reads import query_sync
    from ledger.tokens import decode_token, verify_token
    from storage.projection_queries import get_token

    decoded = decode_token(read_token(token))
    if decoded.jti is None:
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "the token has no jti")
    resolved = settings()
    job = fetch_job(job_id)
    row = query_sync(resolved, get_token, decoded.jti)
    if row is None or row["token_sha256_b64u"] != decoded.token_sha256_b64u:
        raise TokenError(ReasonCode.TOKEN_UNKNOWN, "this token is not recorded on the ledger")
    verify_token(decoded, str(row["issuer_did"]))
    key = resolve_key(key_ref)
    outcome = sign_and_publish(
        key,
        "run.started",
        f"job:{job_id}",
        {"job_id": job_id, "urm_hash_b64u": job["urm_hash_b64u"], "cst_jti": decoded.jti},
        target=publish_target(resolved),
    ).check()
    binding = _binding(fetch_job(job_id))
    if as_json:
        emit_json({"job_id": job_id, "binding": binding, "ledger": outcome.to_dict()})
        return
    echo(f"job {job_id} started (ledger position {outcome.position})")
    echo(f"receipt binding: --run-id {binding['run_id']} --event-hash {binding['event_hash_b64u']}")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _named_option(flag: str, dest: str, value: str, help_text: str) -> Callable[[F], F]:
    """A repeatable ``flag NAME=VALUE`` (split by :func:`_split`)."""
    return click.option(
        flag, dest, multiple=True, metavar=f"NAME={value}", help=f"{help_text} (repeatable)."
    )


def _split(spec: str, option: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not name or not value:
        raise click.UsageError(f"{option} takes NAME=VALUE, got {spec!r}")
    return name, value


@command.command("complete")
@click.option("--job", "job_id", required=True, metavar="JOB", help="The running job.")
@_named_option("--output", "outputs", "PATH", "An output file")
@_named_option("--output-hash", "output_hashes", "SHA256", "An output given by its SHA-256 hex")
@signing_options("Runtime key that signs run.completed.")
def complete(
    job_id: str,
    outputs: tuple[str, ...],
    output_hashes: tuple[str, ...],
    key_ref: str,
    as_json: bool,
) -> None:
    """Record run.completed with each output's name and SHA-256.

    Outputs that differ from the URM's expected_outputs (another hash,
    missing, unexpected) are recorded and flagged, and the flags printed.
    A hash that is not 64 lowercase hex characters is refused
    (OUTPUT_HASH_INVALID).
    """
    listed: list[dict[str, str]] = []
    for spec in outputs:
        name, path = _split(spec, "--output")
        file = Path(path)
        if not file.is_file():
            raise click.UsageError(f"--output {name}: no file {path}")
        listed.append({"name": name, "sha256": _sha256_file(file)})
    for spec in output_hashes:
        name, value = _split(spec, "--output-hash")
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ManifestError(
                ReasonCode.OUTPUT_HASH_INVALID,
                f"output {name!r}: sha256 must be 64 lowercase hex characters",
            )
        listed.append({"name": name, "sha256": value})
    names = [o["name"] for o in listed]
    if len(names) != len(set(names)):
        raise ManifestError(ReasonCode.OUTPUT_HASH_INVALID, "an output name is given twice")
    key = resolve_key(key_ref)
    outcome = sign_and_publish(
        key, "run.completed", f"job:{job_id}", {"job_id": job_id, "outputs": listed}
    ).check()
    job = fetch_job(job_id)
    flags = job.get("output_flags") or []
    ledger = outcome.to_dict()
    if as_json:
        emit_json({"job_id": job_id, "outputs": listed, "output_flags": flags, "ledger": ledger})
        return
    echo(f"job {job_id} completed (ledger position {outcome.position})")
    for flag in flags:
        echo(
            f"flag: {flag['name']}: {flag['flag']} (expected {flag['expected_sha256']},"
            f" got {flag['actual_sha256']})",
            err=True,
        )
    if not flags:
        echo("outputs match the URM's expected_outputs")


@command.command("show")
@click.argument("job_id", metavar="JOB")
@json_option("The whole job row as JSON.")
def show(job_id: str, as_json: bool) -> None:
    """Show a job: status, WPC, token, event chain, receipts, outputs and flags."""
    job = fetch_job(job_id)
    if as_json:
        emit_json(job)
        return
    echo(f"job:        {job['job_id']}  ({job['status']})")
    echo(f"URM:        {job['urm_hash_b64u']}")
    echo(f"WPC:        {job['wpc_hash_b64u']}")
    echo(f"requester:  {job['requester_did']}")
    echo(f"approvers:  {', '.join(job['approver_dids'])}")
    echo(f"token:      {job['cst_jti'] or '-'}  (sub {job['sub'] or '-'})")
    echo(f"receipts:   {job['receipt_count']}")
    echo("chain:")
    for entry in job["event_chain"]:
        echo(f"  {entry['timestamp']}  {entry['event_type']:<22} {entry['event_hash_b64u']}")
    if job["outputs"] is not None:
        echo("outputs:")
        for output in job["outputs"]:
            echo(f"  {output['name']}  {output['sha256']}")
        for flag in job["output_flags"] or []:
            echo(f"  flag: {flag['name']}: {flag['flag']}")


@command.command("bundle")
@click.argument("job_id", metavar="JOB")
@key_option("Key that signs the bundle; it becomes the bundle's agent_did.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, writable=True), help="Output file.")
@click.option("--with-urm-ref", is_flag=True, help="Include a URM reference in the bundle.")
def bundle(job_id: str, key_ref: str, out: str | None, with_urm_ref: bool) -> None:
    """Build a clawsig proof bundle of JOB from the ledger: its event chain and receipts."""
    from claw_ledger.reads import query_sync
    from ledger.bundles import build_job_bundle
    from ledger.canonical import parse_json_strict
    from storage.projection_queries import receipts_for

    job = fetch_job(job_id)
    rows = query_sync(settings(), receipts_for, job_id)
    receipts = [parse_json_strict(str(r["receipt_envelope_raw"]).encode("utf-8")) for r in rows]
    envelope = build_job_bundle(
        job, receipts, resolve_key(key_ref), include_urm_reference=with_urm_ref
    )
    text = json.dumps(envelope.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
        echo(
            f"proof bundle of {job_id}: {len(job['event_chain'])} events,"
            f" {len(receipts)} receipts -> {out}",
            err=True,
        )
    else:
        echo(text, nl=False)


@command.command("verify-bundle")
@file_argument()
@click.option("--agent", metavar="DID", help="Expected agent_did.")
@click.option("--ledger-key", metavar="DID", help="The ledger's did:key (sealed bundles).")
@json_option("Print JSON.")
def verify_bundle(file: str, agent: str | None, ledger_key: str | None, as_json: bool) -> None:
    """Alias of `claw-ledger verify FILE` for proof bundles, kept for scripts.

    The same verification (docs/formats.md §6, and §6.1 for a sealed bundle);
    exit 1 with its reason code on failure. `claw-ledger verify` also shows
    each step.
    """
    from ledger.canonical import parse_json_strict
    from ledger.errors import BundleError
    from ledger.offline_verify import InputKind, verify_document

    try:
        raw = read_input(file)
    except OSError as exc:
        echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    try:
        document = parse_json_strict(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(ReasonCode.MALFORMED_JSON, f"not JSON: {exc}") from exc
    result = verify_document(
        raw, document, InputKind.PROOF_BUNDLE, agent=agent, ledger_key=ledger_key
    )
    failed = result.failure
    if failed is not None:
        if as_json:
            emit_json({"status": "FAIL", "reason_code": failed.code, "detail": failed.detail})
        raise BundleError(ReasonCode(failed.code), failed.detail)
    summary = {"status": "PASS", "reason_code": ReasonCode.OK.value, **result.facts}
    if as_json:
        emit_json(summary)
    else:
        echo(
            f"PASS: bundle {summary['bundle_id']} of run {summary['run_id']},"
            f" {summary['event_count']} events, {summary['receipt_count']} receipts,"
            f" signed by {summary['agent_did']}"
        )
