"""Names of the Kafka topics the ledger uses, built from the topic prefix.

``INGRESS``, ``VERIFIED`` and ``QUARANTINE`` are the names under the default
prefix; use :func:`topic_names` with ``Settings.topic_prefix`` for any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from claw_ledger.config import DEFAULT_TOPIC_PREFIX

__all__ = ["INGRESS", "QUARANTINE", "VERIFIED", "Topics", "topic_names"]


@dataclass(frozen=True)
class Topics:
    """The ledger's topics under one prefix."""

    ingress: str
    verified: str
    quarantine: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.ingress, self.verified, self.quarantine)


def topic_names(prefix: str = DEFAULT_TOPIC_PREFIX) -> Topics:
    """``<prefix>.ingress``, ``<prefix>.verified``, ``<prefix>.quarantine``."""
    return Topics(
        ingress=f"{prefix}.ingress",
        verified=f"{prefix}.verified",
        quarantine=f"{prefix}.quarantine",
    )


_DEFAULT = topic_names()
INGRESS = _DEFAULT.ingress
VERIFIED = _DEFAULT.verified
QUARANTINE = _DEFAULT.quarantine
