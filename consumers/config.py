"""The processor's settings, shared by the runner and both engines (no Kafka
client imported here, so the CLI can build one without loading faust)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ledger.errors import ConfigError
from ledger.registry import DEFAULT_RULE_SETTINGS, Lane, RuleSettings

__all__ = [
    "DEFAULT_CONTROL_CACHE_SIZE",
    "LANES",
    "ProcessorConfig",
    "control_topic_for",
    "parse_lanes",
]

#: every lane, in the order a processor starts them (ADR 0024)
LANES: tuple[Lane, ...] = ("control", "ingress")

#: rows of ``tokens`` and of ``jobs`` a processor keeps between batches (ADR 0020)
DEFAULT_CONTROL_CACHE_SIZE = 50_000


@dataclass(frozen=True)
class ProcessorConfig:
    kafka_bootstrap: str
    database_url: str
    ingress_topic: str
    verified_topic: str
    quarantine_topic: str
    group: str = "claw-ledger-verifier"
    #: the most records one poll fetches (and one commit takes, give or take a chunk)
    batch_size: int = 2000
    #: records verified in one step: each verified chunk is ready to commit while
    #: the rest of its poll is still being verified (ADR 0026)
    verify_chunk: int = 250
    batch_within_s: float = 0.05
    max_message_bytes: int = 1_048_576
    forward: bool = True
    datadir: str | None = None
    #: what the rules are given (the token TTL ceiling); the runner sets it
    rule_settings: RuleSettings = DEFAULT_RULE_SETTINGS
    #: rows of each bounded control table kept between batches (``None``: all)
    control_cache_size: int | None = DEFAULT_CONTROL_CACHE_SIZE
    #: when the bounded tables' digests are checked: before consuming, or while
    #: batches that read neither table commit (ADR 0020)
    control_check: Literal["start", "background"] = "background"
    #: the control lane's topic (halts, resumes, revocations); empty: derived
    #: from ``ingress_topic`` by :func:`control_topic_for`
    control_topic: str = ""
    #: the lanes this process consumes, each with a consumer and a processor of
    #: its own (ADR 0024); a lane left out is not read by this process at all
    lanes: tuple[Lane, ...] = LANES
    #: how old the Kafka clients' view of the topics may grow: partitions added
    #: to a live ledger are consumed within about this long (ADR 0032)
    metadata_max_age_ms: int = 10_000

    def __post_init__(self) -> None:
        if not self.control_topic:
            object.__setattr__(self, "control_topic", control_topic_for(self.ingress_topic))
        if not self.lanes or any(lane not in LANES for lane in self.lanes):
            raise ConfigError(
                f"lanes {self.lanes!r}: a processor runs one or both of {', '.join(LANES)}",
                hint="e.g. --lanes control,ingress",
            )
        if self.control_topic == self.ingress_topic or not self.control_topic.endswith(".control"):
            # the transparency log tells the lanes' chains apart by this name (ADR 0024)
            raise ConfigError(
                f"control topic {self.control_topic!r}: the control lane needs a topic of its"
                f" own, named <prefix>.control",
                hint="leave control_topic empty to use <prefix>.control of the ingress topic",
            )
        # one order whatever was asked, without repeats
        object.__setattr__(self, "lanes", tuple(lane for lane in LANES if lane in self.lanes))

    def topic_of(self, lane: Lane) -> str:
        """The topic a lane consumes."""
        return self.control_topic if lane == "control" else self.ingress_topic


def control_topic_for(ingress_topic: str) -> str:
    """``<prefix>.control`` for ``<prefix>.ingress`` (else ``<ingress_topic>.control``)."""
    prefix = ingress_topic.removesuffix(".ingress")
    return f"{prefix}.control"


def parse_lanes(text: str) -> tuple[Lane, ...]:
    """``"control,ingress"`` as lanes; raises :class:`ConfigError` for an unknown one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in LANES]
    if unknown or not names:
        raise ConfigError(
            f"unknown lane(s) {', '.join(unknown) or '(none given)'}",
            hint=f"lanes are {', '.join(LANES)}, comma-separated",
        )
    return tuple(lane for lane in LANES if lane in names)
