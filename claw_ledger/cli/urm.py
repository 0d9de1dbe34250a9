"""``claw-ledger urm``: Universal Run Manifests, their approvals and submission."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    file_argument,
    json_option,
    key_option,
    precheck_policy,
    read_input,
    report_publish,
    resolve_key,
    sign_and_publish,
    signing_options,
)
from ledger.errors import ManifestError, ReasonCode

__all__ = ["command"]


@click.group("urm")
def command() -> None:
    """Run manifests: hash, approve, submit.

    A URM (docs/formats.md §7) names the job, the WPC hash, the token scope hash,
    the execution envelope, inputs and expected outputs. Approvers sign its
    hash (`urm approve`); the requester submits it with the approvals
    (`urm submit`), which records run.manifest_approved. The requester cannot
    approve their own job.

    \b
    Examples:
      claw-ledger urm hash job-42.urm.json
      claw-ledger urm approve job-42.urm.json --key approver-1 -o approval-1.json
      claw-ledger urm submit job-42.urm.json --approval approval-1.json --key runtime
    """


def _read_urm(path: str) -> dict[str, Any]:
    from ledger.urm import parse_urm_bytes

    return parse_urm_bytes(read_input(path))


@command.command("hash")
@file_argument()
@json_option("Print JSON.")
def hash_command(file: str, as_json: bool) -> None:
    """Validate a URM FILE (JSON or JSON5, '-' for stdin) and print its urm_hash_b64u."""
    from ledger.urm import urm_hash_b64u

    urm = _read_urm(file)
    digest = urm_hash_b64u(urm)
    if as_json:
        emit_json({"urm_hash_b64u": digest, "job_id": urm["job"]["job_id"]})
    else:
        echo(digest)


@command.command("approve")
@file_argument()
@key_option("Approver key (must hold the approver role on the ledger).")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, writable=True), help="Write the approval here."
)
def approve(file: str, key_ref: str, out: str | None) -> None:
    """Sign an approval of the URM in FILE and print it (or write it to --out).

    The signature covers "claw-ledger/urm-approval/v1\\n" + URM hash + "\\n" +
    approved_at; nothing is recorded until the requester submits it.
    """
    from ledger.urm import sign_approval, urm_hash_b64u

    urm = _read_urm(file)
    key = resolve_key(key_ref)
    approval = sign_approval(urm_hash_b64u(urm), key)
    text = json.dumps(approval, indent=2) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
        echo(f"approval of {approval['urm_hash_b64u']} by {key.did} written to {out}", err=True)
    else:
        echo(text, nl=False)


def _read_approvals(paths: tuple[str, ...]) -> list[Any]:
    approvals: list[Any] = []
    for path in paths:
        try:
            value = json.loads(read_input(path))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(
                ReasonCode.URM_APPROVAL_INVALID, f"{path} is not a JSON approval: {exc}"
            ) from exc
        approvals.extend(value if isinstance(value, list) else [value])
    return approvals


@command.command("submit")
@file_argument()
@click.option(
    "--approval",
    "approval_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="An approval file from `urm approve` (repeatable).",
)
@signing_options("Requester key (runtime or operator role); it may not be an approver.")
def submit(file: str, approval_files: tuple[str, ...], key_ref: str, as_json: bool) -> None:
    """Record run.manifest_approved for the URM in FILE with its approvals.

    Refused (exit 1, nothing recorded) when the URM does not validate, names
    an unknown, revoked or superseded WPC, carries no (or too few)
    approvals, an approval does not verify, the requester approved it, or an
    approver lacks the approver role.
    """
    from ledger.urm import check_approvals, urm_hash_b64u, validate_urm

    urm_document = _read_urm(file)
    urm = validate_urm(urm_document)
    digest = urm_hash_b64u(urm_document)
    approvals = _read_approvals(approval_files)
    key = resolve_key(key_ref)
    # local checks first (roles are checked by the ledger)
    check_approvals(approvals, urm, digest, requester_did=key.did, is_approver=lambda _did: True)
    precheck_policy(urm.policy.wpc_hash_b64u)
    job_id = urm.job.job_id
    outcome = sign_and_publish(
        key,
        "run.manifest_approved",
        f"job:{job_id}",
        {"job_id": job_id, "urm_hash_b64u": digest, "urm": urm_document, "approvals": approvals},
    )
    report_publish(
        outcome,
        as_json,
        f"job {job_id} approved (URM {digest})",
        {"job_id": job_id, "urm_hash_b64u": digest},
    )
