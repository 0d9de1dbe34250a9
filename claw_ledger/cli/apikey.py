"""``claw-ledger apikey create|list|revoke``: keys of the HTTP API (ADR 0018).

These commands connect as the tables' owner (the URL ``migrate`` uses): the
API service reads keys as the reader and cannot mint or revoke one.
"""

from __future__ import annotations

from typing import Any

import click

from claw_ledger.apikeys import ROLE_SCOPES, ROLES
from claw_ledger.cli.common import echo, emit_json, json_option, print_table, run_async, settings
from ledger.instants import format_instant

__all__ = ["command"]


async def _with_owner(query: Any, *args: Any, **kwargs: Any) -> Any:
    from claw_ledger.config import effective_database_url
    from ledger.errors import MigrationError
    from storage.projection_queries import open_connection

    conn = await open_connection(effective_database_url(settings(), role="owner"))
    try:
        if not await conn.fetchval("SELECT to_regclass('api_keys') IS NOT NULL"):
            raise MigrationError(
                "this ledger's schema has no api_keys table", hint="run `claw-ledger migrate`"
            )
        return await query(conn, *args, **kwargs)
    finally:
        await conn.close()


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "key_id": row["key_id"],
        "role": row["role"],
        "created_at": format_instant(row["created_at"]),
        "revoked_at": format_instant(row["revoked_at"]) if row["revoked_at"] else None,
    }


@click.group("apikey")
def command() -> None:
    """API keys of `claw-ledger serve`: create (shown once), list, revoke.

    \b
    Roles: reader   GET queries and /metrics
           runtime  POST /v1/authorize
           operator queries and state changes
           admin    everything
    Clients send: Authorization: Bearer KEY
    """


@command.command("create")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(ROLES), required=True, help="What the key may do (see `apikey`)."
)
@json_option("JSON; the key is its `key` field.")
def create(name: str, role: str, as_json: bool) -> None:
    """Create key NAME with ROLE and print it once: the last line of the output.

    Only its SHA-256 is stored; a lost key cannot be shown again (revoke it and
    create another).
    """
    import asyncpg

    from claw_ledger.apikeys import check_name, new_key
    from ledger.errors import ConfigError
    from storage.api_queries import insert_api_key

    check_name(name)
    made = new_key()
    try:
        row = run_async(
            _with_owner(
                insert_api_key, key_id=made.key_id, name=name, role=role, key_sha256=made.key_sha256
            )
        )
    except asyncpg.UniqueViolationError:
        raise ConfigError(
            f"an API key named {name!r} exists",
            hint="pick another name: a name stays taken, even after its key is revoked",
        ) from None
    if as_json:
        emit_json(_row_json(row) | {"key": made.key})
        return
    scopes = ", ".join(sorted(ROLE_SCOPES[row["role"]]))
    echo(f"created API key {name} (id {made.key_id}, role {role}: {scopes})")
    echo("store it now: it is not kept and cannot be shown again")
    echo(made.key)


@command.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@json_option()
def list_keys(include_revoked: bool, as_json: bool) -> None:
    """The API keys (never the keys themselves: names, ids, roles, times)."""
    from storage.api_queries import list_api_keys

    rows = run_async(_with_owner(list_api_keys, include_revoked=include_revoked))
    if as_json:
        emit_json([_row_json(r) for r in rows])
        return
    if not rows:
        echo("no API keys (create one: claw-ledger apikey create NAME --role reader)")
        return
    print_table(
        "claw-ledger API keys",
        ("name", "key id", "role", "created", "revoked"),
        (
            (
                r["name"],
                r["key_id"],
                r["role"],
                f"{r['created_at']:%Y-%m-%d %H:%M:%S}",
                f"{r['revoked_at']:%Y-%m-%d %H:%M:%S}" if r["revoked_at"] else "-",
            )
            for r in rows
        ),
    )


@command.command("revoke")
@click.argument("name")
@json_option()
def revoke(name: str, as_json: bool) -> None:
    """Revoke key NAME: the service refuses it from its next request on."""
    from ledger.errors import ConfigError
    from storage.api_queries import revoke_api_key

    row = run_async(_with_owner(revoke_api_key, name))
    if row is None:
        raise ConfigError(f"no API key named {name!r}", hint="see `claw-ledger apikey list --all`")
    if as_json:
        emit_json(_row_json(row))
        return
    when = f"{row['revoked_at']:%Y-%m-%d %H:%M:%S}"
    echo(f"revoked API key {name} (id {row['key_id']}) at {when}")
