"""``claw-ledger keys``: create local signing keys and manage the on-ledger key registry."""

from __future__ import annotations

import re
from typing import Any

import click

from claw_ledger.cli.common import (
    echo,
    emit_json,
    json_option,
    keys_dir,
    print_table,
    report_publish,
    resolve_key,
    run_async,
    settings,
    sign_and_publish,
    signing_options,
)
from ledger.crypto import KeyPair, load_key, public_key_from_did, save_key
from ledger.roles import Role

__all__ = ["command"]

ROLE_NAMES = [r.value for r in Role]
#: a key NAME is a file name in the keys dir: no path, no hidden file
KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _key_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not KEY_NAME.fullmatch(value):
        raise click.BadParameter(
            f"{value!r}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter"
            " or digit (the key file is <state dir>/keys/NAME.key; --out puts it elsewhere)"
        )
    return value


@click.group("keys")
def command() -> None:
    """Signing keys and the key registry held on the ledger.

    \b
    Examples:
      claw-ledger keys new gateway-1
      claw-ledger keys register gateway-1 --role gateway --key admin
      claw-ledger keys list
      claw-ledger keys revoke did:key:z6Mk... --reason "laptop lost" --key admin
    """


@command.command("new")
@click.argument("name", callback=_key_name)
@click.option("--out", type=click.Path(dir_okay=False), help="Key file (default: state dir).")
@json_option("Print JSON.")
def new_key(name: str, out: str | None, as_json: bool) -> None:
    """Create an Ed25519 key NAME (a 0600 key file) and print its DID."""
    from pathlib import Path

    path = Path(out) if out else keys_dir() / f"{name}.key"
    key = KeyPair.generate(name)
    save_key(key, path)
    if as_json:
        emit_json({"name": name, "did": key.did, "path": str(path)})
    else:
        echo(key.did)
        echo(f"key file: {path}", err=True)


def _did_of(ref: str) -> str:
    if ref.startswith("did:"):
        public_key_from_did(ref)
        return ref
    return resolve_key(ref).did


@command.command("register")
@click.argument("who", metavar="NAME|DID")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(ROLE_NAMES),
    help="Role to grant (repeatable).",
)
@click.option("--name", "label", help="Display name (default: the key's name).")
@signing_options("The admin key that signs the registration.")
def register(
    who: str, roles: tuple[str, ...], label: str | None, key_ref: str, as_json: bool
) -> None:
    """Record a key.registered event granting ROLES to a key (signed by an admin key)."""
    admin = resolve_key(key_ref)
    did = _did_of(who)
    name = label or (who if not who.startswith("did:") else did[-12:])
    outcome = sign_and_publish(
        admin, "key.registered", f"key:{did}", {"did": did, "name": name, "roles": list(roles)}
    )
    report_publish(outcome, as_json, f"registered {did} as {', '.join(roles)}")


@command.command("revoke")
@click.argument("who", metavar="NAME|DID")
@click.option("--reason", required=True, help="Why (recorded).")
@signing_options("The admin key that signs the revocation.")
def revoke(who: str, reason: str, key_ref: str, as_json: bool) -> None:
    """Record a key.revoked event: the key's later events are quarantined."""
    admin = resolve_key(key_ref)
    did = _did_of(who)
    outcome = sign_and_publish(admin, "key.revoked", f"key:{did}", {"did": did, "reason": reason})
    report_publish(outcome, as_json, f"revoked {did}")


@command.command("list")
@json_option()
@click.option("--local", is_flag=True, help="Only the key files in the state dir.")
def list_keys(as_json: bool, local: bool) -> None:
    """The registry (from the ledger) and the local key files."""
    local_keys = []
    directory = keys_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.key")):
            try:
                key = load_key(path)
            except Exception as exc:  # a broken file is reported, not fatal
                local_keys.append({"name": path.stem, "path": str(path), "error": str(exc)})
                continue
            local_keys.append({"name": path.stem, "did": key.did, "path": str(path)})
    registry: list[dict[str, Any]] = [] if local else run_async(_registry())
    if as_json:
        emit_json({"registry": registry, "local": local_keys})
        return
    if not local:
        print_table(
            "Key registry (on the ledger)",
            ("name", "did", "roles", "state"),
            (
                (
                    r["name"],
                    r["did"],
                    ", ".join(r["roles"]),
                    "revoked" if r["revoked"] else "active",
                )
                for r in registry
            ),
            # a DID cut short cannot be copied: it wraps, whole, where it must
            widths={"name": 0, "did": 1, "roles": 0, "state": 0},
        )
    print_table(
        f"Local key files ({directory})",
        ("name", "did"),
        ((r["name"], r.get("did", r.get("error", ""))) for r in local_keys),
        fold=False,
    )


async def _registry() -> list[dict[str, Any]]:
    from claw_ledger.reads import list_keys as query

    return await query(settings())
