"""API keys of the HTTP API: their form, roles and check (ADR 0018).

A key is ``clk_<key_id>_<secret>``: ``key_id`` is 12 hex digits (public: it
names the key in ``apikey list`` and finds its row), ``secret`` 32 random
bytes in base64url. The ledger stores only the SHA-256 of the whole key
(``api_keys``, migration 0011); :func:`matches` compares in constant time.

Roles grant scopes; a route asks for one scope. ``reader`` reads, ``runtime``
asks for authorization decisions, ``operator`` reads and changes state,
``admin`` can do all of it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

from ledger.errors import ConfigError

__all__ = [
    "KEY_PREFIX",
    "ROLES",
    "ROLE_SCOPES",
    "SCOPES",
    "NewKey",
    "Role",
    "Scope",
    "check_name",
    "hash_key",
    "matches",
    "new_key",
    "parse_key",
    "roles_with",
]

KEY_PREFIX = "clk_"
Role = Literal["reader", "runtime", "operator", "admin"]
ROLES: tuple[Role, ...] = ("reader", "runtime", "operator", "admin")
#: read: queries; authorize: decisions for a runtime; operate: state changes
Scope = Literal["read", "authorize", "operate"]
SCOPES: tuple[Scope, ...] = ("read", "authorize", "operate")
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    "reader": frozenset({"read"}),
    "runtime": frozenset({"authorize"}),
    "operator": frozenset({"read", "operate"}),
    "admin": frozenset({"read", "authorize", "operate"}),
}

_KEY_RE = re.compile(r"^clk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class NewKey:
    """A key just made: ``key`` is shown once and never stored."""

    key: str
    key_id: str
    key_sha256: str


def hash_key(key: str) -> str:
    """Hex SHA-256 of the whole key text: what ``api_keys.key_sha256`` holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> NewKey:
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key, key_id, hash_key(key))


def parse_key(key: str) -> str | None:
    """The ``key_id`` of a well-formed key, else ``None``."""
    match = _KEY_RE.match(key)
    return match.group(1) if match else None


def matches(key: str, stored_sha256: str) -> bool:
    """Whether ``key`` hashes to ``stored_sha256``, in constant time."""
    return hmac.compare_digest(hash_key(key).encode(), stored_sha256.encode())


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"bad API key name {name!r}",
            hint="1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def roles_with(scope: Scope) -> tuple[Role, ...]:
    """The roles whose keys may use a route that needs ``scope``."""
    return tuple(role for role in ROLES if scope in ROLE_SCOPES[role])
