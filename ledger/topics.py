"""Names of the Kafka topics the ledger uses, built from a topic prefix.

Pure naming, no I/O: the application reads the prefix from its settings
(``CLAW_LEDGER_TOPIC_PREFIX``), producers and consumers take the names.
``INGRESS``, ``VERIFIED`` and ``QUARANTINE`` are the names under the default
prefix. ``<prefix>.control`` is the control lane: halts, resumes and
revocations (the event types whose registry ``lane`` is ``"control"``).
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
    control: str

    @property
    def all(self) -> tuple[str, str, str, str]:
        return (self.ingress, self.verified, self.quarantine, self.control)

    def for_lane(self, lane: str) -> str:
        """The topic of a lane (``"ingress"`` or ``"control"``)."""
        if lane == "control":
            return self.control
        if lane == "ingress":
            return self.ingress
        raise ValueError(f"unknown lane {lane!r}")


def topic_names(prefix: str = DEFAULT_TOPIC_PREFIX) -> Topics:
    """The four topics under ``prefix``: ingress, verified, quarantine and control."""
    return Topics(
        ingress=f"{prefix}.ingress",
        verified=f"{prefix}.verified",
        quarantine=f"{prefix}.quarantine",
        control=f"{prefix}.control",
    )


_DEFAULT = topic_names()
INGRESS = _DEFAULT.ingress
VERIFIED = _DEFAULT.verified
QUARANTINE = _DEFAULT.quarantine
