"""``claw-ledger init``: create the trust root (the first admin key) and record it."""

from __future__ import annotations

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    json_option,
    keys_dir,
    publish_target,
    report_publish,
    run_async,
    settings,
    sign_and_publish,
)
from ledger.crypto import KeyPair, load_key, save_key

__all__ = ["command"]


@click.command("init")
@click.option("--name", default="admin", show_default=True, help="Name of the admin key.")
@json_option()
def command(name: str, as_json: bool) -> None:
    """Create the admin key (trust root) and record it on the ledger.

    Idempotent: when the ledger already has this trust root, nothing changes.
    Needs the services and the processor (`claw-ledger up`). Connects as the
    writer, which may INSERT the trust root but never change it (ADR 0013).
    """
    from claw_ledger.config import effective_database_url

    resolved = settings()
    writer_url = effective_database_url(resolved, role="writer")
    path = keys_dir(resolved) / f"{name}.key"
    key = load_key(path) if path.exists() else None
    if key is None:
        key = KeyPair.generate(name)
        save_key(key, path)
    run_async(_record_trust_root(writer_url, key.did))
    registered = run_async(_is_registered(writer_url, key.did))
    if registered:
        result = {"status": "committed", "did": key.did, "already": True}
        if as_json:
            emit_json(result)
        else:
            echo(f"trust root {key.did} already recorded ({path})")
        return
    outcome = sign_and_publish(
        key,
        "key.registered",
        f"key:{key.did}",
        {"did": key.did, "name": name, "roles": ["admin"]},
        target=publish_target(resolved),
    )
    report_publish(outcome, as_json, f"trust root {key.did} recorded; admin key file {path}")


async def _record_trust_root(url: str, did: str) -> None:
    from storage import connect
    from storage.postgres import set_trust_root

    conn = await connect(url)
    try:
        await set_trust_root(conn, did)
    finally:
        await conn.close()


async def _is_registered(url: str, did: str) -> bool:
    from storage import connect

    conn = await connect(url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM keys WHERE did = $1", did))
    finally:
        await conn.close()
