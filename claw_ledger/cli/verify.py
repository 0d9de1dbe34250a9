"""``claw-ledger verify``: check a file offline, with no ledger and no server."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import click

from claw_ledger.background import forked
from claw_ledger.cli.common import echo, emit_json, file_argument, json_option, read_input, terminal
from ledger.offline_verify import InputKind, VerificationResult, parse_ledger_key, verify_bytes

__all__ = ["command", "exit_code", "report_lines"]

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2

#: what the reader should do when a step fails with this code
_ADVICE: dict[str, str] = {
    "MALFORMED_JSON": "the file is neither JSON nor a signed note: check that it is the file"
    " you were given",
    "MALFORMED_ENVELOPE": "this is not a clawsig v1 envelope: ask the sender for the original file",
    "UNKNOWN_ENVELOPE_VERSION": "an envelope version this verifier does not know: do not rely"
    " on it",
    "UNKNOWN_HASH_ALGORITHM": "a hash algorithm this verifier does not know: do not rely on it",
    "UNKNOWN_ALGORITHM": "a signature algorithm this verifier does not know: do not rely on it",
    "UNKNOWN_ENVELOPE_TYPE": "an envelope type this ledger does not know: nothing was verified",
    "UNKNOWN_EVENT_TYPE": "an event type this ledger does not know: the ledger would refuse it",
    "SCHEMA_VALIDATION_FAILED": "the content breaks its format (docs/formats.md): ask the"
    " sender for a corrected file",
    "WPC_INVALID": "the policy document breaks the WPC format (docs/formats.md §3)",
    "HASH_MISMATCH": "the content was changed after it was signed: do not rely on it, and ask"
    " the signer for the original bytes",
    "SIGNATURE_INVALID": "the signature does not verify: the file is forged or altered; do not"
    " rely on it",
    "INVALID_DID_FORMAT": "the signer is not an Ed25519 did:key: nothing can be verified",
    "PROOF_BUNDLE_AGENT_MISMATCH": "the bundle is not signed by the agent it names (or not by"
    " the agent you expected): do not rely on it",
    "RECEIPT_BINDING_MISMATCH": "a receipt belongs to another run or event: it was copied in"
    " from elsewhere; do not count it",
    "RECEIPT_MISSING": "a model call has no gateway receipt: it did not go through the gateway"
    " or its receipt was left out; ask for the complete bundle",
    "PRODUCER_MISMATCH": "the event names another producer than its signer: the ledger would"
    " refuse it",
    "CHECKPOINT_MALFORMED": "not a well-formed C2SP signed checkpoint: ask for the exact bytes"
    " the ledger served",
    "CHECKPOINT_KEY_UNKNOWN": "nothing shows the ledger signed this checkpoint: get the"
    " ledger's did:key from its operator (`claw-ledger keys list`) and pass it with"
    " --ledger-key DID",
    "CHECKPOINT_SIGNATURE_INVALID": "the ledger key's signature does not verify: the"
    " checkpoint is forged or altered",
    "CHECKPOINT_ORIGIN_MISMATCH": "the checkpoint is of another log: check --origin",
    "INCLUSION_PROOF_INVALID": "the proof does not place that leaf in this checkpoint's tree:"
    " do not treat the event as logged; fetch a proof for this very checkpoint",
    "CONSISTENCY_PROOF_INVALID": "the newer checkpoint does not extend the older one: keep"
    " both checkpoints and report them to the ledger's operator (a fork or a rewrite)",
    "LEAF_MALFORMED": "the leaf is not an event leaf (docs/transparency.md §1)",
    "BUNDLE_RECEIPT_MISSING": "a model call the run was authorized to make has no gateway"
    " receipt: it did not go through the gateway, or its receipt was never recorded",
    "BUNDLE_NOT_BOUND": "the bundle says something its logged events do not (a chain entry,"
    " receipt, decision or halt that is not the ledger's): do not rely on it",
    "BUNDLE_URM_MISMATCH": "the bundle's URM is not the one approved for the run",
    "BUNDLE_WPC_MISMATCH": "the bundle's WPC is not the run's signed policy",
    "BUNDLE_SCOPE_MISMATCH": "the token's scope hash is not the one the URM approved",
    "BUNDLE_SIGNER_NOT_ALLOWED": "the bundle is not sealed by the ledger key you pinned."
    " Sealed by the run's agent, it cannot show that none of the run's events was left out:"
    " ask the ledger's operator for the ledger's seal (`claw-ledger bundle seal`), or pass"
    " --accept-agent-seal to check only what it holds. Signed by anyone else, it was"
    " re-signed: do not rely on it",
    "INTERNAL_ERROR": "a bug in the verifier: report it with the file",
}

#: what a valid file of this kind does not show, and who can check it
_LIMITS: dict[InputKind, str] = {
    InputKind.LEDGER_EVENT: "the signer's registration and roles and the event's rules need"
    " the ledger (`claw-ledger audit`)",
    InputKind.WPC: "the publisher's policy-admin role needs the ledger (`claw-ledger wpc get`)",
    InputKind.GATEWAY_RECEIPT: "its binding to a run's chain is checked in the run's proof bundle",
}


#: a valid bundle that the run's agent sealed proves what it holds, not what it leaves out
_AGENT_SEAL = (
    "\n  sealed by the run's agent, not the ledger: every event it holds is in the ledger,"
    " but events it leaves out (denials, halts, receipts) would not show here;"
    " the counts above are the agent's"
)


def exit_code(result: VerificationResult) -> int:
    if result.valid:
        return EXIT_VALID
    return EXIT_UNREADABLE if result.kind is InputKind.UNREADABLE else EXIT_INVALID


def _valid_line(kind: InputKind, facts: Mapping[str, Any]) -> str:
    if kind is InputKind.PROOF_BUNDLE and facts.get("sealed"):
        counts = facts["counts"]
        return (
            f"sealed proof bundle of run {facts['job_id']} ({facts['run_status']}):"
            f" {counts['events']} ledger events in the checkpoint of size"
            f" {facts['checkpoint_size']}, {counts['receipts']} receipts,"
            f" {counts['decisions_allowed']} calls allowed and {counts['decisions_denied']}"
            f" denied, policy {facts['policy_hash_b64u']}, signed by {facts['agent_did']}"
            + ("" if facts.get("sealed_by") == "ledger" else _AGENT_SEAL)
        )
    if kind is InputKind.PROOF_BUNDLE:
        return (
            f"proof bundle {facts['bundle_id']} of run {facts['run_id']}:"
            f" {facts['event_count']} events, {facts['receipt_count']} receipts,"
            f" signed by its agent {facts['agent_did']}"
        )
    if kind is InputKind.LEDGER_EVENT:
        return (
            f"{facts['event_type']} event {facts['event_id']} on {facts['stream']},"
            f" signed by {facts['signer_did']}"
        )
    if kind is InputKind.WPC:
        return f"WPC {facts['policy_hash_b64u']}, signed by {facts['signer_did']}"
    if kind is InputKind.GATEWAY_RECEIPT:
        return (
            f"receipt {facts['receipt_id']} of {facts['gateway_id']} ({facts['model']})"
            f" for run {facts['run_id']}, signed by {facts['signer_did']}"
        )
    return (
        f"checkpoint of {facts['origin']}, tree size {facts['tree_size']},"
        f" root {facts['root_hash_b64']}, signed by the ledger key {facts['signer_did']}"
    )


def report_lines(result: VerificationResult, source: str) -> list[str]:
    """The text report: one line per step, then the verdict and what to do."""
    lines = [f"Verifying {source} ({result.kind.value})"]
    for check in result.checks:
        mark = "\u2713" if check.ok else "\u2717"
        text = f"  {mark} {check.step}. {check.name}"
        if not check.ok:
            text += f": {check.code}"
        if check.detail:
            text += f" ({check.detail})" if check.ok else f": {check.detail}"
        lines.append(text)
    if result.valid:
        lines.append(f"VALID: {_valid_line(result.kind, result.facts)}")
        if result.kind in _LIMITS:
            lines.append(f"not checked offline: {_LIMITS[result.kind]}")
        return lines
    code = result.reason_code
    advice = _ADVICE.get(code, f"do not rely on this file (docs/formats.md §12, {code})")
    lines.append(f"INVALID ({code}): {advice}")
    return lines


def _check_ledger_key(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is not None:
        try:
            parse_ledger_key(value)
        except ValueError as exc:
            raise click.BadParameter(f"not a did:key or a note verifier key: {exc}") from exc
    return value


@contextlib.contextmanager
def _working(what: str, *, enabled: bool) -> Iterator[None]:
    """A spinner on a terminal's stderr while a large input is verified (a sealed
    bundle of 10,000 calls takes seconds); nothing when piped or with --json."""
    if not (enabled and sys.stderr.isatty()):
        yield
        return
    with terminal(stderr=True).status(f"{what}…"):
        yield


@click.command("verify")
@file_argument()
@click.option(
    "--ledger-key",
    metavar="DID",
    callback=_check_ledger_key,
    help="The ledger's did:key (or note verifier key) that must sign a checkpoint"
    " (also a sealed bundle's).",
)
@click.option("--origin", metavar="ORIGIN", help="The log a checkpoint must be of.")
@click.option("--agent", metavar="DID", help="The agent_did a proof bundle must have.")
@click.option(
    "--accept-agent-seal",
    is_flag=True,
    help="Accept a sealed bundle sealed by the run's agent instead of the ledger: what it"
    " holds is checked, but it cannot show that nothing was left out.",
)
@json_option("Print the verdict and steps as JSON.")
def command(
    file: str,
    ledger_key: str | None,
    origin: str | None,
    agent: str | None,
    accept_agent_seal: bool,
    as_json: bool,
) -> None:
    """Verify FILE offline: a proof bundle (sealed or not), a signed envelope or a checkpoint.

    The kind is detected from the content. FILE may be a clawsig proof bundle,
    a ledger_event, wpc or gateway_receipt envelope, a C2SP signed checkpoint,
    or a proof file holding a checkpoint with inclusion and consistency proofs
    (docs/transparency.md §8). A checkpoint must be signed by the key given
    with --ledger-key; without it the verification fails. A sealed bundle
    (`claw-ledger bundle export`) is also checked against the ledger's log: its
    events against the checkpoint signed by --ledger-key, its URM, WPC, token
    scope, decisions and receipts against those events (docs/formats.md §6.1).
    It must be sealed by that ledger key: the run's agent, the party the bundle
    is about, could leave out its own denials and halts (--accept-agent-seal
    checks such a bundle for what it holds). '-' reads stdin.

    Exit 0 when valid, 1 when a step fails (the first failing step's reason
    code is the verdict), 2 when FILE cannot be read or is neither JSON nor a
    signed note.

    \b
    Examples:
      claw-ledger verify job-42.bundle.json
      claw-ledger verify event.json --json
      claw-ledger verify proofs.json --ledger-key did:key:z6Mk... --origin ledger.example/log
    """
    raw = read_input(file)
    with _working(f"verifying {len(raw) / 1e6:,.1f} MB", enabled=not as_json and len(raw) > 1e6):
        # a large sealed bundle's inclusion proofs are checked in a forked child meanwhile
        # (unless the spinner's thread runs: then all of it here)
        result = verify_bytes(
            raw,
            ledger_key=ledger_key,
            origin=origin,
            agent=agent,
            background=forked,
            accept_agent_seal=accept_agent_seal,
        )
    if as_json:
        emit_json(result.to_dict())
    else:
        for line in report_lines(result, "stdin" if file == "-" else file):
            echo(line)
    sys.exit(exit_code(result))
