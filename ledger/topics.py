"""Names of the Kafka topics the ledger uses, built from a topic prefix.

Pure naming, no I/O: the application reads the prefix from its settings
(``CLAW_LEDGER_TOPIC_PREFIX``), producers and consumers take the names.
``INGRESS``, ``VERIFIED`` and ``QUARANTINE`` are the names under the default
prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TOPIC_PREFIX", "INGRESS", "QUARANTINE", "VERIFIED", "Topics", "topic_names"]

DEFAULT_TOPIC_PREFIX = "claw"


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
