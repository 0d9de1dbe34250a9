"""The processor's settings, shared by the runner and both engines (no Kafka
client imported here, so the CLI can build one without loading faust)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ledger.registry import DEFAULT_RULE_SETTINGS, RuleSettings

__all__ = ["DEFAULT_CONTROL_CACHE_SIZE", "ProcessorConfig"]

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
