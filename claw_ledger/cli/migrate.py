"""``claw-ledger migrate``: bring the database schema up to date."""

from __future__ import annotations

import json
from pathlib import Path

import click

from claw_ledger.config import effective_database_url, load_settings

__all__ = ["command"]


@click.command("migrate")
@click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL URL (default: $CLAW_LEDGER_DATABASE_URL, else the server of "
    "`claw-ledger services up`).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State dir of `services up` (default ./.claw-ledger). [env: CLAW_LEDGER_STATE_DIR]",
)
@click.option(
    "--migrations",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of NNNN_name.sql files (default: the project's migrations/).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(
    database_url: str | None, state_dir: Path | None, directory: Path | None, as_json: bool
) -> None:
    """Apply pending migrations, each in its own transaction (idempotent).

    Refuses a database whose schema is newer than this code, and an applied
    migration whose file has changed.
    """
    import asyncio

    from storage.migrate import migrate

    settings = load_settings(database_url=database_url, state_dir=state_dir)
    url = effective_database_url(settings)
    report = asyncio.run(migrate(url, directory=directory))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return
    for m in report.applied:
        click.echo(f"applied {m.filename}")
    if not report.applied:
        click.echo(f"up to date (version {report.version})")
    else:
        click.echo(f"schema now at version {report.version}")
