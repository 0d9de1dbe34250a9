"""Text checks, each usable as a pydantic field validator: they return the value or
raise ``ValueError`` with the message a schema error shows."""

from __future__ import annotations

import re
from collections.abc import Callable

from ledger.encoding import B64U_SHA256_RE

__all__ = ["check_b64u_hash", "matching", "only_version"]


def matching(pattern: re.Pattern[str], message: str) -> Callable[[str], str]:
    """A check that the whole value matches ``pattern``; ``ValueError(message)`` if not."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(message)
        return value

    return check


#: A base64url SHA-256 digest (43 characters), else ``ValueError``.
check_b64u_hash = matching(B64U_SHA256_RE, "must be a base64url SHA-256 digest (43 characters)")


def only_version(field: str, supported: str) -> Callable[[str], str]:
    """A check that ``field`` holds the one version this code reads."""

    def check(value: str) -> str:
        if value != supported:
            raise ValueError(f'{field} {value!r} is not supported (only "{supported}")')
        return value

    return check
