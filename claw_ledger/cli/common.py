"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from claw_ledger.config import Settings, load_settings
from ledger.crypto import KeyPair, load_key
from ledger.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "emit_json",
    "key_option",
    "keys_dir",
    "report_publish",
    "resolve_key",
    "run_async",
    "settings",
]


def settings() -> Settings:
    """Settings from flags (set by the root group as env), env, config file, defaults."""
    return load_settings()


def keys_dir(resolved: Settings | None = None) -> Path:
    return (resolved or settings()).state_dir / "keys"


def resolve_key(value: str) -> KeyPair:
    """``--key`` accepts a key file path or the NAME given to ``claw-ledger keys new``."""
    path = Path(value).expanduser()
    if path.is_file():
        return load_key(path)
    if "/" not in value:
        candidate = keys_dir() / f"{value}.key"
        if candidate.is_file():
            return load_key(candidate)
    raise ConfigError(
        f"no key file {value!r} (looked for the path and for {keys_dir() / (value + '.key')})",
        hint="create one with `claw-ledger keys new NAME`",
    )


def key_option(
    help_text: str = "Signing key: a key file path or a key NAME.",
) -> Callable[[F], F]:
    return click.option("--key", "key_ref", required=True, metavar="KEY", help=help_text)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def run_async(coro: Any) -> Any:
    import asyncio

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


def report_publish(result: dict[str, Any], as_json: bool, ok_message: str) -> None:
    """Print the outcome of a published event; exit 1 (RejectedError) when quarantined."""
    from ledger.errors import ReasonCode, RejectedError

    if as_json:
        emit_json(result)
    if result.get("status") == "quarantined":
        code = result.get("reason_code", "")
        raise RejectedError(
            ReasonCode(code) if code in ReasonCode.__members__ else ReasonCode.INTERNAL_ERROR,
            f"the ledger refused the event: {result.get('detail')}",
        )
    if not as_json:
        click.echo(f"{ok_message} (ledger position {result.get('position', '?')})")
