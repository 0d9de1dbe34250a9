"""The ``claw-ledger`` command line.

Each command group lives in its own module in this package and is registered
in :data:`_COMMAND_MODULES`; every module exposes a click object named
``command``. Errors from :mod:`ledger.errors` are turned into a clear message
and an exit code here, in one place.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ledger.errors import LedgerError, RejectedError

__all__ = ["main"]

# module name -> attribute holding the click command/group
_COMMAND_MODULES: tuple[str, ...] = ()

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
def cli() -> None:
    """claw-ledger: signed, verified evidence ledger for AI agents.

    Events are signed clawsig envelopes published to Kafka, verified by a
    stream processor and committed to an append-only Postgres ledger.
    """


def _register() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"claw_ledger.cli.{name}")
        cli.add_command(module.command)


_register()


def main() -> None:
    cli(prog_name="claw-ledger")
