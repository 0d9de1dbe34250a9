"""``claw-ledger wpc``: the Work Policy Contract registry (docs/formats.md §3)."""

from __future__ import annotations

from typing import Any

import click

from claw_ledger.cli.common import (
    IdentifierArgsCommand,
    echo,
    emit_json,
    file_argument,
    json_option,
    load_wpc_reference,
    precheck_policy,
    publish_and_report,
    read_wpc,
    report_publish,
    resolve_key,
    settings,
    sign_and_publish,
    signing_options,
)
from ledger.errors import EventError, PolicyError, ReasonCode

__all__ = ["command", "verify_registry_row"]


@click.group("wpc")
def command() -> None:
    """Work Policy Contracts: hash, publish, fetch, diff, shadow, supersede and revoke.

    A WPC is identified by its policy hash: b64u(SHA-256(JCS(document))).
    Every change is a signed event (policy.published / .superseded /
    .revoked) and the registry fails closed: an unknown, revoked or
    mismatching WPC is an error, never a default policy.

    \b
    Examples:
      claw-ledger wpc hash policy.json5
      claw-ledger wpc publish policy.json5 --key policy-admin
      claw-ledger wpc get OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4 --verify
      claw-ledger wpc supersede OLD_HASH NEW_HASH --key policy-admin
      claw-ledger wpc revoke HASH --reason "allows exec on prod" --key policy-admin
      claw-ledger wpc diff policy-v1.json5 policy-v2.json5
      claw-ledger wpc shadow NEW_HASH --scope '*' --key policy-admin
    """


@command.command("hash")
@file_argument()
@json_option("Print JSON.")
def hash_command(file: str, as_json: bool) -> None:
    """Print the policy_hash_b64u of a WPC FILE (JSON or JSON5; '-' reads stdin).

    The document is validated first (size, syntax, known sections); an
    invalid one is refused with its reason code (exit 1).

    \b
    Example:
      $ claw-ledger wpc hash policy.json
      OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4
    """
    from ledger.canonical import jcs
    from ledger.wpc import policy_hash_b64u

    document = read_wpc(file)
    digest = policy_hash_b64u(document)
    if as_json:
        emit_json({"policy_hash_b64u": digest, "jcs": jcs(document).decode("utf-8")})
    else:
        echo(digest)


@command.command("publish")
@file_argument()
@signing_options("Policy-admin key that signs the WPC and the event.")
def publish_command(file: str, key_ref: str, as_json: bool) -> None:
    """Validate FILE, sign it as a `wpc` envelope and record policy.published.

    \b
    Example:
      $ claw-ledger wpc publish policy.json5 --key policy-admin
      published WPC OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4 (ledger position 7)
    """
    from ledger.wpc import policy_hash_b64u, sign_wpc

    document = read_wpc(file)
    key = resolve_key(key_ref)
    digest = policy_hash_b64u(document)
    envelope = sign_wpc(document, key)
    outcome = sign_and_publish(
        key,
        "policy.published",
        f"policy:{digest}",
        {"policy_hash_b64u": digest, "wpc_envelope_json": envelope.to_bytes().decode("utf-8")},
    )
    report_publish(outcome, as_json, f"published WPC {digest}", {"policy_hash_b64u": digest})


def verify_registry_row(row: dict[str, Any], policy_hash: str) -> dict[str, Any]:
    """Recompute the hash of a registry row's exact envelope and check its signature.

    Returns the parsed envelope. Raises with the first failing reason code.
    """
    from ledger.wpc import parse_wpc_envelope_bytes, verify_wpc_envelope

    document = parse_wpc_envelope_bytes(str(row["wpc_envelope_raw"]).encode("utf-8"))
    verified = verify_wpc_envelope(document, expected_hash=policy_hash)
    if verified.publisher_did != row["publisher_did"]:
        raise PolicyError(
            ReasonCode.WPC_HASH_MISMATCH,
            "the registry row names another publisher than the envelope",
        )
    return dict(document)


def _check_publisher(key_row: dict[str, Any] | None, did: str) -> None:
    if key_row is None:
        raise EventError(ReasonCode.UNKNOWN_SIGNER, f"WPC publisher {did} is not registered")
    if key_row["revoked"]:
        raise EventError(ReasonCode.SIGNER_REVOKED, f"WPC publisher {did} was revoked")
    if "policy-admin" not in key_row["roles"]:
        raise EventError(
            ReasonCode.ROLE_NOT_ALLOWED, f"WPC publisher {did} does not hold the policy-admin role"
        )


# A policy hash is base64url and may begin with "-": the commands taking one
# read such a word as the HASH argument, never as options (IdentifierArgsCommand).


@command.command("get", cls=IdentifierArgsCommand)
@click.argument("policy_hash", metavar="HASH")
@click.option("--verify", is_flag=True, help="Recompute the hash, check signature and role.")
@click.option("--any-status", is_flag=True, help="Also return a revoked WPC (exit 0).")
@json_option("Registry record and envelope as JSON.")
def get(policy_hash: str, verify: bool, any_status: bool, as_json: bool) -> None:
    """Print the signed `wpc` envelope of HASH, exactly as it was signed.

    Fails closed (exit 1): a malformed or unknown hash, a revoked WPC (unless
    --any-status), and with --verify a hash that does not match the content,
    a bad signature or a publisher without the policy-admin role.

    \b
    Examples:
      claw-ledger wpc get OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4 > wpc.json
      claw-ledger wpc get OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4 --verify --json
    """
    from claw_ledger.reads import query_sync
    from ledger.wpc import check_policy_hash
    from storage.projection_queries import get_key, get_policy

    check_policy_hash(policy_hash)
    resolved = settings()
    row = query_sync(resolved, get_policy, policy_hash)
    if row is None:
        raise PolicyError(ReasonCode.WPC_UNKNOWN, f"no WPC {policy_hash} in the registry")
    if row["status"] == "revoked" and not any_status:
        raise PolicyError(
            ReasonCode.WPC_REVOKED, f"WPC {policy_hash} was revoked: {row['revoked_reason']}"
        )
    if row["status"] == "superseded":
        echo(f"warning: WPC {policy_hash} is superseded by {row['superseded_by']}", err=True)
    verified = False
    if verify:
        verify_registry_row(row, policy_hash)
        _check_publisher(query_sync(resolved, get_key, row["publisher_did"]), row["publisher_did"])
        verified = True
    if as_json:
        from storage.projection_queries import policy_document

        record = policy_document(row)
        record["verified"] = verified
        emit_json(record)
        return
    echo(row["wpc_envelope_raw"])
    if verified:
        echo(f"verified: hash, signature and publisher role ({row['publisher_did']})", err=True)


@command.command("list")
@click.option(
    "--status", type=click.Choice(["active", "superseded", "revoked"]), help="Only this status."
)
@json_option("Print JSON.")
def list_command(status: str | None, as_json: bool) -> None:
    """List the WPCs in the registry."""
    from claw_ledger.reads import query_sync
    from storage.projection_queries import list_policies

    rows = query_sync(settings(), list_policies, status=status)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        echo(
            f"no {status} WPCs" if status else "no WPCs (publish one: claw-ledger wpc publish FILE)"
        )
        return
    # plain lines, a hash whole on each: it is copied into `wpc get` or `resume --policy`
    echo(f"{'POLICY HASH':<43}  {'STATUS':<10} {'HALT':<4} ISSUER")
    for row in rows:
        extra = ""
        if row["status"] == "superseded":
            extra = f" -> {row['superseded_by']}"
        elif row["status"] == "revoked":
            extra = f" ({row['revoked_reason']})"
        halt = "yes" if row["halt_mode"] else "no"
        issuer = row["issuer"] or "-"
        echo(f"{row['policy_hash_b64u']}  {row['status']:<10} {halt:<4} {issuer}{extra}")


@command.command("supersede", cls=IdentifierArgsCommand)
@click.argument("old", metavar="OLD_HASH")
@click.argument("new", metavar="NEW_HASH")
@click.option("--reason", default="", help="Why (recorded).")
@signing_options("Policy-admin key that signs the event.")
def supersede(old: str, new: str, reason: str, key_ref: str, as_json: bool) -> None:
    """Record that NEW_HASH replaces OLD_HASH (both must be active).

    New tokens, URMs and runs can no longer use OLD_HASH.
    """
    precheck_policy(old)
    precheck_policy(new)
    publish_and_report(
        key_ref,
        "policy.superseded",
        f"policy:{old}",
        {"old_policy_hash_b64u": old, "new_policy_hash_b64u": new, "reason": reason},
        as_json,
        f"WPC {old} superseded by {new}",
    )


@command.command("revoke", cls=IdentifierArgsCommand)
@click.argument("policy_hash", metavar="HASH")
@click.option("--reason", required=True, help="Why (recorded).")
@signing_options("Policy-admin key that signs the event.")
def revoke(policy_hash: str, reason: str, key_ref: str, as_json: bool) -> None:
    """Revoke WPC HASH: it no longer exists for tokens, URMs, runs and receipts."""
    from ledger.wpc import check_policy_hash

    check_policy_hash(policy_hash)
    publish_and_report(
        key_ref,
        "policy.revoked",
        f"policy:{policy_hash}",
        {"policy_hash_b64u": policy_hash, "reason": reason},
        as_json,
        f"revoked WPC {policy_hash}",
    )


@command.command("diff", cls=IdentifierArgsCommand)
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@json_option("Print the differences as JSON.")
def diff(old: str, new: str, as_json: bool) -> None:
    """What WPC NEW allows differently from WPC OLD.

    OLD and NEW are WPC files (JSON or JSON5) or policy hashes in the
    registry. Tools and model providers are judged by the authorize
    decision's own rule for every name either WPC mentions, plus what each
    does with a name it does not mention; approvals, token binding, CST
    requirements, runtime and the halt mode are compared setting by setting.

    Exit 0 when they allow exactly the same, 1 when anything differs, 2 on
    a usage error or an unreadable WPC.

    \b
    Examples:
      claw-ledger wpc diff policy-v1.json5 policy-v2.json5
      claw-ledger wpc diff OLD_HASH policy-v2.json5 --json
    """
    from ledger.errors import RejectedError
    from ledger.wpc_diff import diff_wpcs

    try:
        result = diff_wpcs(load_wpc_reference(old), load_wpc_reference(new))
    except RejectedError as exc:
        # 1 means "they differ" here, as for diff(1)
        echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    different = bool(result.actions or result.defaults or result.fields)
    if as_json:
        emit_json(result.to_dict())
    else:
        echo(f"old {result.old_hash}\nnew {result.new_hash}")
        if not different:
            echo("no difference in what they allow")
        for change in (*result.actions, *result.defaults):
            verb = "now DENIED " if change.old else "now allowed"
            echo(
                f"  {verb}  {change.kind} {change.name}"
                f"  ({change.old_reason} -> {change.new_reason})"
            )
        for item in result.fields:
            echo(f"  changed      {item.section}.{item.name}: {item.old!r} -> {item.new!r}")
        echo(
            f"{len(result.newly_denied)} newly denied, {len(result.newly_allowed)} newly allowed,"
            f" {len(result.fields)} settings changed"
        )
    if different:
        raise SystemExit(1)


_SCOPE_HELP = "'*' (every job), 'sub:<subject>' or 'job:<job id>'"


def _check_scope(scope: str) -> str:
    if scope == "*" or (
        scope.startswith(("sub:", "job:"))
        and len(scope) > 4
        and not any(c.isspace() for c in scope)
    ):
        return scope
    raise click.BadParameter(f"{scope!r}: use {_SCOPE_HELP}", param_hint="--scope")


@command.command("shadow", cls=IdentifierArgsCommand)
@click.argument("policy_hash", metavar="HASH")
@click.option("--scope", required=True, help=f"Whose calls: {_SCOPE_HELP}.")
@click.option("--reason", default="", help="Why (recorded).")
@signing_options("Policy-admin key that signs policy.shadowed.")
def shadow(policy_hash: str, scope: str, reason: str, key_ref: str, as_json: bool) -> None:
    """Judge every call in SCOPE under WPC HASH too, beside the WPC in force.

    HASH must be a registered, active WPC. The authorize service keeps
    answering with each job's own WPC; where HASH would have answered
    otherwise it records a call.shadowed event. Summarise them with
    `claw-ledger simulate --shadow`; stop with `claw-ledger wpc unshadow`.
    Shadowing a scope again replaces its candidate.

    \b
    Examples:
      claw-ledger wpc shadow NEW_HASH --scope '*' --key policy-admin
      claw-ledger wpc shadow NEW_HASH --scope job:job-42 --key policy-admin
    """
    scope = _check_scope(scope)
    precheck_policy(policy_hash)
    publish_and_report(
        key_ref,
        "policy.shadowed",
        f"shadow:{scope}",
        {"policy_hash_b64u": policy_hash, "scope": scope, "reason": reason},
        as_json,
        f"WPC {policy_hash} in shadow over {scope}",
    )


@command.command("unshadow")
@click.option("--scope", required=True, help=f"The shadowed scope: {_SCOPE_HELP}.")
@click.option("--reason", default="", help="Why (recorded).")
@signing_options("Policy-admin key that signs policy.shadow_ended.")
def unshadow(scope: str, reason: str, key_ref: str, as_json: bool) -> None:
    """End the shadow policy of exactly SCOPE (SHADOW_NOT_ACTIVE when none is).

    \b
    Example:
      claw-ledger wpc unshadow --scope '*' --key policy-admin
    """
    scope = _check_scope(scope)
    publish_and_report(
        key_ref,
        "policy.shadow_ended",
        f"shadow:{scope}",
        {"scope": scope, "reason": reason},
        as_json,
        f"shadow over {scope} ended",
    )


@command.command("shadows")
@json_option("Print JSON.")
def shadows(as_json: bool) -> None:
    """List the active shadow policies, by scope."""
    from claw_ledger.reads import query_sync
    from storage.projection_queries import active_shadows

    rows = query_sync(settings(), active_shadows)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        echo("no active shadow policies")
    for row in rows:
        echo(f"{row['scope']:<30} {row['policy_hash_b64u']}  since {row['shadowed_at']}")
