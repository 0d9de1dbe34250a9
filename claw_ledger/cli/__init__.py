"""The ``claw-ledger`` command line.

Each command group lives in its own module in this package; :data:`COMMANDS`
names the module and attribute of every top-level command, and a module is
imported only when one of its commands runs (or ``--help`` lists them), so
``claw-ledger --version`` imports no command at all. Errors from
:mod:`ledger.errors` are turned into a clear message and an exit code here,
in one place.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from claw_ledger import __version__

__all__ = ["COMMANDS", "cli", "main"]

#: command name -> (module of this package, attribute holding its click command)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("up", "command"),
    "down": ("up", "down"),
    "demo": ("up", "demo"),
    "init": ("init", "command"),
    "keys": ("keys", "command"),
    "publish": ("publish", "command"),
    "timeline": ("timeline", "command"),
    "audit": ("audit", "command"),
    "quarantine": ("audit", "quarantine_command"),
    "processor": ("processor", "command"),
    "services": ("services", "command"),
    "migrate": ("migrate", "command"),
    "policy": ("policy", "command"),
    "wpc": ("wpc", "command"),
    "cst": ("cst", "command"),
    "urm": ("urm", "command"),
    "run": ("run", "command"),
    "bundle": ("bundle", "command"),
    "bundler": ("bundle", "bundler"),
    "pulse": ("pulse", "command"),
    "receipt": ("receipt", "command"),
    "halt": ("halt", "command"),
    "resume": ("halt", "resume"),
    "halts": ("halt", "halts"),
    "verify": ("verify", "command"),
    "replay": ("replay", "command"),
    "state": ("state", "command"),
    "authorize": ("authorize", "command"),
    "simulate": ("simulate", "command"),
    "checkpointer": ("checkpointer", "command"),
    "checkpoint": ("checkpoint", "command"),
    "prove": ("checkpoint", "prove"),
    "serve": ("serve", "command"),
    "apikey": ("apikey", "command"),
    "status": ("status", "command"),
    "archive": ("archive", "command"),
}

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


class _LedgerGroup(click.Group):
    """Loads each command from :data:`COMMANDS` on first use; maps ledger errors to exits."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module_name, attribute = COMMANDS[cmd_name]
            module = importlib.import_module(f"{__name__}.{module_name}")
            command = getattr(module, attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise RuntimeError(f"{module.__name__}.{attribute} is not the {cmd_name!r} command")
            self.add_command(command)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        # imported here: --help and --version never reach invoke, and should stay light
        from claw_ledger.cli.common import echo
        from claw_ledger.logs import report_fatal
        from ledger.errors import LedgerError, RejectedError

        try:
            return super().invoke(ctx)
        except RejectedError as exc:
            report_fatal(f"error: {exc}", echo)
            sys.exit(EXIT_REJECTED)
        except LedgerError as exc:
            report_fatal(f"error: {exc}", echo)
            sys.exit(EXIT_USAGE)
        except OSError as exc:
            if exc.filename is None:  # not a file's: a connection's, a bug's
                raise
            report_fatal(
                f"error: {exc.strerror or exc}: {exc.filename}{_state_dir_hint(exc)}", echo
            )
            sys.exit(EXIT_USAGE)
        except Exception as exc:
            if not _schema_missing(exc):
                raise
            report_fatal(
                f"error: the database holds no ledger schema, or an older one ({exc})\n"
                "hint: run `claw-ledger migrate`, or check that --database-url"
                " (CLAW_LEDGER_DATABASE_URL) names the ledger's database",
                echo,
            )
            sys.exit(EXIT_USAGE)


def _state_dir_hint(exc: OSError) -> str:
    """Where the file lies in the state dir: which setting to fix."""
    from pathlib import Path

    from claw_ledger.cli.common import settings

    if not isinstance(exc.filename, str | Path):  # a descriptor, bytes: no path to judge
        return ""
    try:
        state_dir = settings().state_dir
    except Exception:  # the settings themselves are broken: their own error says so
        return ""
    if not Path(exc.filename).is_relative_to(state_dir):
        return ""
    return (
        f"\nhint: the state dir {state_dir} must be a directory this user can write"
        " (--state-dir, CLAW_LEDGER_STATE_DIR)"
    )


def _schema_missing(exc: BaseException) -> bool:
    """A query met a table or column the database does not have: it was never
    migrated, migrated by an older claw-ledger, or is not the ledger's. asyncpg
    is looked up, not imported: a command that never loaded it cannot raise it."""
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is None:
        return False
    missing = (asyncpg.exceptions.UndefinedTableError, asyncpg.exceptions.UndefinedColumnError)
    return isinstance(exc, missing)


@click.group(cls=_LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="claw-ledger")
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


def main() -> None:
    cli(prog_name="claw-ledger")
