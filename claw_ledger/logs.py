"""How the long-running commands log: one line per record, with its time.

``processor run|supervise``, ``checkpointer run``, ``bundler run`` and ``serve``
run for days under a supervisor or detached, with stderr in
``<state_dir>/<name>.log``. Unconfigured, Python wrote warnings as the bare
message and dropped everything below: an operator reading the log after an
incident could not tell when a batch was rolled back or a halt lifted.

Two formats:

* ``text`` (the default): ``2026-12-03T17:50:01.123Z WARNING claw_ledger.processor: …``
* ``json``: one object per line (``time``, ``level``, ``logger``, ``message``,
  and ``exception`` when there is one), for log shippers.

Messages carry text from the ledger (reasons, stream names, Kafka and
Postgres errors). Either format writes a control character as an escape, so
one record is always one line: a forged line break or terminal escape
sequence in a halt's reason cannot make a record look like two, or rewrite
the lines before it (:func:`claw_ledger.shown.printable`).

The command line exports the chosen level and format to the environment
(``CLAW_LEDGER_LOG_LEVEL``, ``CLAW_LEDGER_LOG_FORMAT``), so a processor that
``supervise`` restarts logs the same way.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Literal

from claw_ledger.shown import printable

__all__ = [
    "FORMATS",
    "FORMAT_ENV",
    "LEVELS",
    "LEVEL_ENV",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "report_fatal",
]

LEVEL_ENV = "CLAW_LEDGER_LOG_LEVEL"
FORMAT_ENV = "CLAW_LEDGER_LOG_FORMAT"
LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]

#: libraries that log every retry and rebalance at INFO: their warnings still show
_CHATTY = ("aiokafka", "kafka", "asyncio", "faust", "mode")


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


class TextFormatter(logging.Formatter):
    """``<UTC time> <LEVEL> <logger>: <message>``; a traceback follows on its own
    lines, indented, so that every record starts with a time."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_utc(record.created)} {record.levelname} {record.name}:"
            f" {printable(record.getMessage())}"
        )
        trace = _exception_text(self, record)
        if trace:
            indented = "\n".join(f"    {part}" for part in trace.splitlines())
            line += "\n" + printable(indented, lines=True)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, in ASCII: every control, bidirectional and line
    separator character is a ``\\u`` escape (JSON itself escapes only C0)."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace = _exception_text(self, record)
        if trace:
            document["exception"] = trace
        return json.dumps(document)


class _LedgerHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (and replaces when called again)."""


def configure_logging(
    level: str = "info", log_format: LogFormat = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Send every record at ``level`` or above to ``stream`` (stderr) in
    ``log_format``. Called again, it replaces its own handler and leaves any
    other one (a test's capture) in place. Returns the handler."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: one of {', '.join(LEVELS)}")
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r}: one of {', '.join(FORMATS)}")
    handler = _LedgerHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _LedgerHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    return handler


def report_fatal(text: str, echo: Callable[..., None]) -> None:
    """The error a command ends on: log records (one per line of ``text``) when
    :func:`configure_logging` set this process up, so that a service's log stays
    one format to its end; otherwise ``echo(text, err=True)``, as the CLI writes."""
    if not any(isinstance(h, _LedgerHandler) for h in logging.getLogger().handlers):
        echo(text, err=True)
        return
    log = logging.getLogger("claw_ledger")
    for line in text.splitlines():
        log.critical("%s", line)
