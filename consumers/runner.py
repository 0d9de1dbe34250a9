"""Run the verifying processor with the chosen engine (blocking, for the CLI).

The runner owns the process's fate: an engine raises
:class:`~consumers.failures.BatchFailedError` and the runner exits with its code
(70 a bug, 75 the database gone), so that a supervisor restarts the processor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import replace
from typing import Literal, NoReturn

from consumers.config import ProcessorConfig
from consumers.failures import (
    EXIT_REFUSED,
    BatchFailedError,
    DatabaseUnavailableError,
    KafkaUnavailableError,
)
from ledger.batch import BatchReport
from ledger.errors import TopicRewoundError
from ledger.registry import RuleSettings

__all__ = ["ENGINES", "StatusLine", "run_processor"]

log = logging.getLogger("claw_ledger.processor")

Engine = Literal["kafka", "faust"]
ENGINES: tuple[Engine, ...] = ("kafka", "faust")


class StatusLine:
    """Counters for the live status line."""

    def __init__(self) -> None:
        self.committed = 0
        self.quarantined = 0
        self.duplicates = 0
        self.started = time.monotonic()
        self._last = (self.started, 0)

    def add(self, report: BatchReport) -> None:
        self.committed += len(report.accepted)
        self.quarantined += len(report.quarantined)
        self.duplicates += report.duplicates

    def line(self) -> str:
        now = time.monotonic()
        then, count = self._last
        rate = (self.committed - count) / max(now - then, 1e-6)
        self._last = (now, self.committed)
        return (
            f"committed {self.committed:>9,}  quarantined {self.quarantined:>6,}  "
            f"duplicates {self.duplicates:>6,}  {rate:>8,.0f} ev/s"
        )


def run_processor(
    config: ProcessorConfig, *, engine: Engine = "kafka", status: bool = False
) -> None:
    """Run until interrupted. ``kafka``: the aiokafka engine; ``faust``: the faust app.

    Refuses to start (MigrationError, exit 2) unless the database schema is at
    the newest migration this code knows.
    """
    from storage.migrate import check_schema

    asyncio.run(check_schema(config.database_url))
    config = replace(config, rule_settings=_rule_settings())
    log.info(
        "processor (pid %d, %s engine) started in group %s, lanes %s",
        os.getpid(),
        engine,
        config.group,
        ",".join(config.lanes),
    )
    counters = StatusLine()
    if engine == "faust":
        from consumers.faust_engine import run_faust_worker

        run_faust_worker(
            config,
            on_batch=counters.add,
            on_failure=_exit_for,
            status_line=counters.line if status else None,
        )
        return
    from consumers.kafka_engine import run_engine

    async def main() -> None:
        printer = asyncio.create_task(_print_status(counters)) if status else None
        try:
            await run_engine(config, on_batch=counters.add)
        finally:
            if printer is not None:
                printer.cancel()

    try:
        asyncio.run(main())
    except BatchFailedError as exc:
        _exit_for(exc)


def _exit_for(exc: BatchFailedError | TopicRewoundError) -> NoReturn:
    """End the process at once with the failure's exit code: ``os._exit``, since
    faust's worker (or a stuck thread) could hold a normal exit; the positions
    in Postgres make the supervisor's restart exactly-once. A topic created again
    exits 2, which a supervisor does not restart: a restart would meet it again."""
    if isinstance(exc, TopicRewoundError):
        log.critical("error: %s", exc)
        os._exit(EXIT_REFUSED)
    if isinstance(exc, DatabaseUnavailableError):
        log.critical("database unavailable for too long; exiting")
    elif isinstance(exc, KafkaUnavailableError):
        log.critical("%s; exiting (is it running? `claw-ledger services status`)", exc)
    else:
        log.critical(
            "processor failed; exiting so that a supervisor restarts it",
            exc_info=exc.__cause__ or exc,
        )
    os._exit(exc.exit_code)


def _rule_settings() -> RuleSettings:
    """The token lifetime ceiling the CLI enforces (``CLAW_LEDGER_CST_MAX_TTL``) is
    the processor's too, so that a token the issuer may mint is never refused."""
    from ledger.tokens import parse_ttl

    ttl = os.environ.get("CLAW_LEDGER_CST_MAX_TTL")
    return RuleSettings(max_token_ttl_seconds=parse_ttl(ttl)) if ttl else RuleSettings()


async def _print_status(counters: StatusLine) -> None:
    while True:
        await asyncio.sleep(1.0)
        sys.stderr.write("\r" + counters.line())
        sys.stderr.flush()
