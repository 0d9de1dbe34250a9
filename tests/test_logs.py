"""The long-running commands' log records: one line each, with its time, in text or JSON."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from claw_ledger.cli.common import log_options
from claw_ledger.logs import FORMAT_ENV, LEVEL_ENV, configure_logging

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
#: a reason as an attacker would write it: a line break, a forged record, a terminal escape
FORGED = "halted\n2026-12-03T00:00:00.000Z INFO claw_ledger.processor: all clear\x1b[2K"


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def _emit(log_format: str, message: str, *args: object, exc: bool = False) -> str:
    stream = io.StringIO()
    configure_logging("info", "json" if log_format == "json" else "text", stream)
    log = logging.getLogger("claw_ledger.test")
    if exc:
        try:
            raise ValueError("bad\nthing\x1b]0;title\x07")
        except ValueError:
            log.exception(message, *args)
    else:
        log.warning(message, *args)
    return stream.getvalue()


@pytest.mark.usefixtures("restored_root")
def test_a_text_record_is_one_line_with_its_time_level_and_logger() -> None:
    written = _emit("text", "halt %s lifted: %s", "h-1", FORGED)
    assert written.count("\n") == 1
    assert re.fullmatch(
        rf"{TIME} WARNING claw_ledger\.test: halt h-1 lifted: halted\\u000a.*\n", written
    )
    assert "\x1b" not in written and "\\u001b[2K" in written


@pytest.mark.usefixtures("restored_root")
def test_a_traceback_follows_indented_so_that_every_record_starts_with_a_time() -> None:
    lines = _emit("text", "round failed", exc=True).splitlines()
    assert re.match(rf"{TIME} ERROR claw_ledger\.test: round failed$", lines[0])
    assert len(lines) > 2 and all(line.startswith("    ") for line in lines[1:])
    assert any("ValueError: bad" in line for line in lines)
    assert not any("\x1b" in line or "\x07" in line for line in lines)


@pytest.mark.usefixtures("restored_root")
def test_a_json_record_is_one_object_on_one_line() -> None:
    written = _emit("json", "lifted: %s \u2028 %s", FORGED, "é \x9b2J \u202e")
    # one line of ASCII: C1 controls, bidirectional and line separators escaped too
    assert written.count("\n") == 1 and written.isascii()
    record = json.loads(written)
    assert re.fullmatch(TIME, record.pop("time"))
    assert record == {
        "level": "warning",
        "logger": "claw_ledger.test",
        "message": f"lifted: {FORGED} \u2028 é \x9b2J \u202e",
    }
    traced = json.loads(_emit("json", "round failed", exc=True))
    assert traced["level"] == "error" and "ValueError: bad\nthing" in traced["exception"]


@pytest.mark.usefixtures("restored_root")
def test_configuring_again_replaces_its_own_handler_and_keeps_the_others() -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first = configure_logging("info", "text", io.StringIO())
    second = configure_logging("debug", "json", io.StringIO())
    handlers = logging.getLogger().handlers
    assert second in handlers and first not in handlers and other in handlers
    assert logging.getLogger().level == logging.DEBUG
    # the client libraries' retries and rebalances stay out below warning
    assert logging.getLogger("aiokafka").getEffectiveLevel() == logging.WARNING
    with pytest.raises(ValueError, match="log level 'loud'"):
        configure_logging("loud")
    with pytest.raises(ValueError, match="log format 'xml'"):
        configure_logging("info", "xml")  # type: ignore[arg-type]


@pytest.mark.usefixtures("restored_root")
def test_the_options_configure_logging_and_export_it_for_child_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LEVEL_ENV, raising=False)
    monkeypatch.delenv(FORMAT_ENV, raising=False)
    seen: dict[str, object] = {}

    @click.command()
    @log_options()
    @click.option("--name", default="x")
    def command(name: str) -> None:
        import os

        seen.update(name=name, level=os.environ[LEVEL_ENV], format=os.environ[FORMAT_ENV])
        seen["root"] = logging.getLogger().level

    result = CliRunner().invoke(command, ["--log-format", "json", "--name", "n"])
    assert result.exit_code == 0, result.output
    assert seen == {"name": "n", "level": "info", "format": "json", "root": logging.INFO}
    monkeypatch.delenv(FORMAT_ENV)
    result = CliRunner().invoke(command, [], env={LEVEL_ENV: "warning"})
    assert result.exit_code == 0 and seen["level"] == "warning" and seen["format"] == "text"
    assert "--log-format [text|json]" in CliRunner().invoke(command, ["--help"]).output
    assert CliRunner().invoke(command, ["--log-level", "loud"]).exit_code == 2
