"""The CLI starts light: ``--version`` and ``--help`` import no Kafka, Postgres or
faust client, and the lazily loaded commands are exactly the ones the modules define."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from claw_ledger.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("faust", "aiokafka", "asyncpg")

_PROBE = """
import json, sys
from claw_ledger.cli import main
sys.argv = ["claw-ledger", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
watched = %r
loaded = sorted(
    name for name in sys.modules if any(name == w or name.startswith(w + ".") for w in watched)
)
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def _start(args: list[str], watched: tuple[str, ...] = HEAVY) -> tuple[str, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE % (watched,), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return result.stdout, report


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["processor", "--help"]])
def test_starting_the_cli_imports_no_kafka_postgres_or_faust(args: list[str]) -> None:
    stdout, report = _start(args)
    assert report == {"code": 0, "loaded": []}
    assert "claw-ledger" in stdout


def test_the_probe_sees_what_a_command_imports() -> None:
    # the same probe, on a module the CLI does load (guards against a blind probe)
    _, report = _start(["--version"], watched=("click",))
    assert "click" in report["loaded"]


def test_help_lists_every_command() -> None:
    stdout, _ = _start(["--help"])
    listed = {line.split()[0] for line in stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)


def test_the_registry_holds_exactly_the_top_level_commands_of_the_modules() -> None:
    defined: dict[str, str] = {}
    modules = sorted(p.stem for p in (ROOT / "claw_ledger" / "cli").glob("*.py"))
    for module_name in set(modules) - {"__init__", "common"}:
        module = importlib.import_module(f"claw_ledger.cli.{module_name}")
        objects = [v for v in vars(module).values() if isinstance(v, click.Command)]
        nested = {
            id(sub)
            for group in objects
            if isinstance(group, click.Group)
            for sub in group.commands.values()
        }
        for obj in objects:
            if id(obj) not in nested and obj.name is not None:
                defined[obj.name] = module_name
    assert defined == {name: module for name, (module, _) in COMMANDS.items()}
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None and command.name == name


def _every_command() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    pending: list[tuple[str, click.Command]] = []
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        pending.append((name, command))
    while pending:
        path, command = pending.pop()
        found.append((path, command))
        if isinstance(command, click.Group):
            pending.extend((f"{path} {n}", sub) for n, sub in command.commands.items())
    return found


def test_every_option_of_every_command_says_what_it_does() -> None:
    """`--help` is the manual: an option listed without a word (a bare `--json`)
    leaves the user to guess."""
    silent = sorted(
        f"{path} {param.opts[0]}"
        for path, command in _every_command()
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not param.help
    )
    assert silent == []


def test_the_cli_default_group_is_the_processors() -> None:
    # spelled out in the CLI so that --help loads no consumer module
    from claw_ledger.cli.common import DEFAULT_GROUP
    from consumers.config import ProcessorConfig

    assert ProcessorConfig.group == DEFAULT_GROUP
