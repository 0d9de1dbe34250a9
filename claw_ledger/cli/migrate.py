"""``claw-ledger migrate``: bring the database schema up to date, and its roles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from claw_ledger.cli.common import echo, json_option
from claw_ledger.config import effective_database_url, load_settings

__all__ = ["command"]

#: exit status when the roles could not be created (the SQL to run was printed)
EXIT_ROLES_NEEDED = 3


@click.command("migrate")
@click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL URL of the tables' owner (default: $CLAW_LEDGER_DATABASE_URL, else the "
    "server of `claw-ledger services up`).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State dir of `services up` (default ./.claw-ledger); the roles' passwords are kept "
    "in its db-roles.json. [env: CLAW_LEDGER_STATE_DIR]",
)
@click.option(
    "--migrations",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of NNNN_name.sql files (default: the project's migrations/).",
)
@click.option(
    "--print-grants",
    is_flag=True,
    help="Only print the SQL that creates the writer and reader roles and grants their "
    "rights (with their passwords); run it as the owner after migrating.",
)
@click.option(
    "--rotate-role-passwords",
    is_flag=True,
    help="Give existing writer and reader roles new passwords (stored in the state dir). "
    "Every process still using the old ones is refused until it gets the new URLs.",
)
@json_option("Print JSON.")
def command(
    database_url: str | None,
    state_dir: Path | None,
    directory: Path | None,
    print_grants: bool,
    rotate_role_passwords: bool,
    as_json: bool,
) -> None:
    """Apply pending migrations, each in its own transaction (idempotent), then create
    the writer and reader roles and grant their rights.

    Refuses a database whose schema is newer than this code, and an applied
    migration whose file has changed. When the connecting role may not create
    roles (no CREATEROLE), prints the SQL an administrator must run and exits 3.

    Roles that exist keep their passwords, except on the state dir's own local
    server (`services up`), where the stored ones are set again, and with
    --rotate-role-passwords: on a shared server, whoever set them (another
    state dir, an administrator) is never locked out by a migration.
    """
    import asyncio

    from claw_ledger.db_roles import kept_roles_note, migrate_with_roles, role_credentials
    from storage.roles import RolesNotCreated, database_name, roles_sql

    settings = load_settings(database_url=database_url, state_dir=state_dir)
    if print_grants:
        url = effective_database_url(settings, role="owner")
        echo(roles_sql(role_credentials(settings.state_dir, database_name(url))), nl=False)
        return
    try:
        report, created, kept = asyncio.run(
            migrate_with_roles(
                settings, directory=directory, rotate_passwords=rotate_role_passwords
            )
        )
    except RolesNotCreated as exc:
        echo(exc.sql, nl=False)
        echo(
            f"error: the schema is migrated, but {exc.message}; run the SQL above as the"
            " owner of the ledger's tables (a superuser will do), then `claw-ledger migrate`"
            " again",
            err=True,
        )
        sys.exit(EXIT_ROLES_NEEDED)
    if as_json:
        roles = {"roles_created": created, "roles_kept": kept}
        echo(json.dumps(report.to_json() | roles, indent=2, sort_keys=True))
        return
    for m in report.applied:
        echo(f"applied {m.filename}")
    if not report.applied:
        echo(f"up to date (version {report.version})")
    else:
        echo(f"schema now at version {report.version}")
    for role in created:
        echo(f"created role {role}")
    if kept:
        echo(kept_roles_note(kept), err=True)
