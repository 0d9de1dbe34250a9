"""The ``claw-ledger`` command line.

Each command group lives in its own module in this package and is registered
in :data:`_COMMAND_MODULES`; every module exposes a click object named
``command``. Errors from :mod:`ledger.errors` are turned into a clear message
and an exit code here, in one place.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from ledger.errors import LedgerError, RejectedError

__all__ = ["main"]

# modules of the core ledger commands; each exposes ``command`` (and maybe ``extra_commands``)
_CORE_MODULES: tuple[str, ...] = (
    "up",
    "init",
    "keys",
    "publish",
    "timeline",
    "audit",
    "processor",
)
# further command modules, registered the same way
_COMMAND_MODULES: tuple[str, ...] = (
    "services",
    "migrate",
    "policy",
    "wpc",
    "cst",
    "urm",
    "run",
    "receipt",
    "halt",
    "verify",
)

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class _LedgerGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RejectedError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_REJECTED)
        except LedgerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)


@click.group(cls=_LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claw-ledger")
@click.option(
    "--kafka", metavar="HOST:PORT", help="Kafka bootstrap server [env CLAW_LEDGER_KAFKA]."
)
@click.option("--database-url", metavar="URL", help="Postgres URL [env CLAW_LEDGER_DATABASE_URL].")
@click.option(
    "--state-dir", metavar="DIR", help="Keys, service data, pids [env CLAW_LEDGER_STATE_DIR]."
)
def cli(kafka: str | None, database_url: str | None, state_dir: str | None) -> None:
    """claw-ledger: signed, verified evidence ledger for AI agents.

    Events are signed clawsig envelopes published to Kafka, verified by a
    stream processor and committed to an append-only Postgres ledger.

    \b
    Start here:
      claw-ledger up --detach     # Kafka + Postgres + processor
      claw-ledger demo            # a short scenario, then its timeline
      claw-ledger timeline        # what happened
    """
    # Global flags travel as environment so every command (and child process) sees them.
    for env_name, value in (
        ("CLAW_LEDGER_KAFKA", kafka),
        ("CLAW_LEDGER_DATABASE_URL", database_url),
        ("CLAW_LEDGER_STATE_DIR", state_dir),
    ):
        if value:
            os.environ[env_name] = value


def _register() -> None:
    for name in _CORE_MODULES + _COMMAND_MODULES:
        module = importlib.import_module(f"claw_ledger.cli.{name}")
        cli.add_command(module.command)
        for extra in getattr(module, "extra_commands", ()):
            cli.add_command(extra)


_register()


def main() -> None:
    cli(prog_name="claw-ledger")
