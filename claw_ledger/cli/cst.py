"""``claw-ledger cst``: scoped tokens (docs/formats.md §4)."""

from __future__ import annotations

import time
from typing import Any

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    file_argument,
    json_option,
    precheck_policy,
    publish_target,
    read_input,
    read_token,
    resolve_key,
    settings,
    sign_and_publish,
    signing_options,
)
from ledger.errors import ReasonCode, RejectedError, TokenError

__all__ = ["ENV_MAX_TTL", "command"]

ENV_MAX_TTL = "CLAW_LEDGER_CST_MAX_TTL"


@click.group("cst")
def command() -> None:
    """Scoped tokens: issue, inspect, revoke, and compute scope hashes.

    A CST is a compact EdDSA JWT. The ledger records its jti, claims, scope
    hash and the SHA-256 of the token (token.issued), never the token: the
    token is a bearer secret, printed once, to you.

    \b
    Examples:
      TOKEN=$(claw-ledger cst issue --sub agent:alpha --aud clawproxy \\
          --scope proxy:call:anthropic --scope tools:read --ttl 15m \\
          --policy OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4 --job job-42 --key issuer)
      echo "$TOKEN" | claw-ledger cst inspect -
      claw-ledger cst scope-hash claims.json
      claw-ledger cst revoke --job job-42 --reason "leaked in CI log" --key issuer
    """


@command.command("issue")
@click.option("--sub", required=True, help="Subject: the agent the token is for.")
@click.option("--aud", multiple=True, required=True, help="Audience (repeatable).")
@click.option("--scope", "scopes", multiple=True, required=True, help="Scope (repeatable).")
@click.option("--ttl", default="15m", show_default=True, help="Lifetime: 900, 900s, 15m, 1h, 1d.")
@click.option(
    "--max-ttl",
    default="24h",
    show_default=True,
    envvar=ENV_MAX_TTL,
    help=f"Longest lifetime allowed [env {ENV_MAX_TTL}].",
)
@click.option("--policy", "policy_hash", metavar="HASH", help="Pin to this WPC hash.")
@click.option("--job", "job_id", metavar="JOB", help="Bind to this job (claim mission_id).")
@click.option("--nonce", help="Optional nonce claim.")
@click.option("--jti", help="Token id (default: cst_<random>).")
@signing_options(
    "Issuer key: signs the token and the token.issued event.",
    "Token, claims and ledger result as JSON.",
)
def issue(
    sub: str,
    aud: tuple[str, ...],
    scopes: tuple[str, ...],
    ttl: str,
    max_ttl: str,
    policy_hash: str | None,
    job_id: str | None,
    nonce: str | None,
    jti: str | None,
    key_ref: str,
    as_json: bool,
) -> None:
    """Issue a CST, record token.issued, and print the token (stdout).

    Fails (exit 1, nothing recorded): empty scope, a TTL that is not
    positive or over --max-ttl, a malformed policy hash, a pin to an unknown,
    revoked or superseded WPC, an active halt covering the subject or job.
    """
    from ledger.tokens import build_claims, issue_token, parse_ttl

    claims = build_claims(
        sub=sub,
        aud=list(aud),
        scope=list(scopes),
        ttl_seconds=parse_ttl(ttl),
        max_ttl_seconds=parse_ttl(max_ttl),
        jti=jti,
        nonce=nonce,
        policy_hash_b64u=policy_hash,
        mission_id=job_id,
    )
    if policy_hash is not None:
        precheck_policy(policy_hash)
    key = resolve_key(key_ref)
    issued = issue_token(claims, key)
    outcome = sign_and_publish(
        key, "token.issued", f"token:{issued.jti}", issued.event_body(key.did)
    ).check()
    if as_json:
        emit_json(
            {
                "token": issued.token,
                "jti": issued.jti,
                "token_scope_hash_b64u": issued.token_scope_hash_b64u,
                "token_sha256_b64u": issued.token_sha256_b64u,
                "claims": issued.claims,
                "ledger": outcome.to_dict(),
            }
        )
        return
    echo(issued.token)
    echo(
        f"issued {issued.jti} (scope hash {issued.token_scope_hash_b64u}, expires"
        f" {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(claims['exp']))},"
        f" ledger position {outcome.position})",
        err=True,
    )


@command.command("scope-hash")
@file_argument()
@json_option("Also print the normalised input.")
def scope_hash(file: str, as_json: bool) -> None:
    """Print token_scope_hash_b64u for a JSON object of claims (FILE or '-').

    The input needs sub, aud and scope; policy_hash_b64u, mission_id,
    agent_did, owner_did, ... enter the hash when they are non-empty strings.
    iat, exp, jti and nonce never do. Put the result in a URM's
    policy.cst_scope_hash.

    \b
    Example:
      $ cat claims.json
      {"sub": "agent:alpha", "aud": "clawproxy",
       "scope": ["proxy:call:anthropic", "tools:read"]}
      $ claw-ledger cst scope-hash claims.json
      7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0
    """
    import json5

    from ledger.canonical import jcs, parse_json_strict
    from ledger.tokens import scope_hash_input, token_scope_hash_b64u

    data = read_input(file)
    try:
        claims = parse_json_strict(data)
    except (ValueError, UnicodeDecodeError):
        try:
            claims = json5.loads(data.decode("utf-8"), allow_duplicate_keys=False)
        except (ValueError, UnicodeDecodeError) as exc:
            raise TokenError(ReasonCode.MALFORMED_JSON, f"claims are not JSON: {exc}") from exc
    if not isinstance(claims, dict):
        raise TokenError(ReasonCode.TOKEN_MALFORMED, "the claims must be a JSON object")
    digest = token_scope_hash_b64u(claims)
    if as_json:
        normalised = scope_hash_input(claims)
        emit_json(
            {
                "token_scope_hash_b64u": digest,
                "input": normalised,
                "jcs": jcs(normalised).decode("utf-8"),
            }
        )
    else:
        echo(digest)


def _token_status(row: dict[str, Any] | None, token_sha256: str, now: int) -> tuple[str, str]:
    if row is None:
        return "unknown", "no token.issued event for this jti"
    if row["token_sha256_b64u"] != token_sha256:
        return "unknown", "the ledger holds a different token under this jti"
    if row["status"] == "revoked":
        return "revoked", f"revoked: {row['revoked_reason']}"
    if now >= int(row["exp"]):
        return "expired", f"expired at {row['exp']}"
    return "active", "recorded, not revoked, not expired"


_STATUS_CODES = {
    "unknown": ReasonCode.TOKEN_UNKNOWN,
    "revoked": ReasonCode.TOKEN_REVOKED,
    "expired": ReasonCode.TOKEN_EXPIRED,
}


@command.command("inspect")
@click.argument("token", metavar="TOKEN|FILE|-")
@click.option("--issuer", metavar="DID", help="Verify against this issuer (default: the ledger's).")
@click.option("--offline", is_flag=True, help="Do not ask the ledger (needs --issuer).")
@json_option("Print JSON.")
def inspect(token: str, issuer: str | None, offline: bool, as_json: bool) -> None:
    """Decode a token, check its signature and show its status on the ledger.

    The token comes from a file, from stdin (-), or as the argument itself; a
    file or stdin keeps it off the command line, which other users can see.

    Status: active, expired, revoked or unknown. Exit 0 only for a token that
    verifies and is active; 1 otherwise (after printing what is known).

    \b
    Example:
      echo "$TOKEN" | claw-ledger cst inspect - --json
      claw-ledger cst inspect token.jwt
    """
    from claw_ledger.reads import query_sync
    from ledger.tokens import decode_token, verify_token
    from storage.projection_queries import get_token

    decoded = decode_token(read_token(token))
    row = None
    if not offline and decoded.jti:
        row = query_sync(settings(), get_token, decoded.jti)
    issuer_did = issuer or (row["issuer_did"] if row else None)
    signature, signature_error = "unverified (issuer unknown)", None
    if issuer_did:
        try:
            verify_token(decoded, issuer_did, check_expiry=False)
            signature = "valid"
        except RejectedError as exc:
            signature, signature_error = f"invalid ({exc.code.value})", exc
    now = int(time.time())
    if offline:
        expired = isinstance(decoded.claims.get("exp"), int) and now >= decoded.claims["exp"]
        status, detail = ("expired", "by its exp claim") if expired else ("not checked", "offline")
    else:
        status, detail = _token_status(row, decoded.token_sha256_b64u, now)
    report = {
        "header": decoded.header,
        "claims": decoded.claims,
        "jti": decoded.jti,
        "token_sha256_b64u": decoded.token_sha256_b64u,
        "issuer_did": issuer_did,
        "signature": signature,
        "status": status,
        "status_detail": detail,
    }
    if as_json:
        emit_json(report)
    else:
        import json

        echo("header: " + json.dumps(decoded.header))
        echo("claims: " + json.dumps(decoded.claims, indent=2))
        echo(f"issuer: {issuer_did or '?'}")
        echo(f"signature: {signature}")
        echo(f"status: {status} ({detail})")
    if signature_error is not None:
        raise TokenError(signature_error.code, signature_error.detail)
    if signature != "valid":
        raise TokenError(ReasonCode.TOKEN_UNKNOWN, "the token's issuer is unknown: not verified")
    if status in _STATUS_CODES:
        raise TokenError(_STATUS_CODES[status], f"token {decoded.jti} is {status}: {detail}")


@command.command("revoke")
@click.option("--jti", help="Revoke this token.")
@click.option("--job", "job_id", metavar="JOB", help="Revoke every active token bound to JOB.")
@click.option("--sub", help="Revoke every active token issued to SUB.")
@click.option("--reason", required=True, help="Why (recorded).")
@signing_options("Issuer or operator key that signs the token.revoked events.")
def revoke(
    jti: str | None,
    job_id: str | None,
    sub: str | None,
    reason: str,
    key_ref: str,
    as_json: bool,
) -> None:
    """Record token.revoked for one token (--jti) or all active ones of a job or subject.

    \b
    Examples:
      claw-ledger cst revoke --jti cst_3f2a... --reason "rotated" --key issuer
      claw-ledger cst revoke --sub agent:alpha --reason "agent compromised" --key operator
    """
    from producers.outcome import Quarantined, TimedOut
    from storage.projection_queries import tokens_for

    if sum(x is not None for x in (jti, job_id, sub)) != 1:
        raise click.UsageError("give exactly one of --jti, --job, --sub")
    resolved = settings()
    if jti is not None:
        targets = [jti]
    else:
        from claw_ledger.reads import query_sync

        rows = query_sync(resolved, tokens_for, job=job_id, sub=sub)
        targets = [str(r["jti"]) for r in rows]
        if not targets:
            which = f"job {job_id}" if job_id else f"subject {sub}"
            raise TokenError(ReasonCode.TOKEN_UNKNOWN, f"no active token for {which}")
    key = resolve_key(key_ref)
    destination = publish_target(resolved)
    outcomes = []
    for token_id in targets:
        outcome = sign_and_publish(
            key,
            "token.revoked",
            f"token:{token_id}",
            {"jti": token_id, "reason": reason},
            target=destination,
        )
        if isinstance(outcome.verdict, TimedOut):
            raise outcome.verdict.error(outcome.event_id)
        outcomes.append(outcome)
        if not as_json:
            if isinstance(outcome.verdict, Quarantined):
                echo(f"{token_id}: refused ({outcome.verdict.reason_code})", err=True)
            else:
                echo(f"revoked {token_id}")
    if as_json:
        emit_json(
            [
                outcome.to_dict() | {"jti": token_id}
                for outcome, token_id in zip(outcomes, targets, strict=True)
            ]
        )
    for outcome in outcomes:
        outcome.check()
