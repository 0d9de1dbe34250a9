"""Edge: the ledger's storage, and all of its SQL.

* :mod:`storage.protocol`: :class:`LedgerStore`, what the processor needs;
  :mod:`storage.postgres` (asyncpg) and :mod:`storage.memory` implement it;
* :mod:`storage.migrate`: the migration runner (SQL files of the ``migrations`` package);
* :mod:`storage.roles`: the writer and reader roles and their grants (ADR 0013);
* :mod:`storage.ledger_queries` and :mod:`storage.projection_queries`: the read queries;
* here: connections and pools with clear errors.

Storage imports the domain (:mod:`ledger`), never the application.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from ledger.errors import ConfigError, ServiceError

__all__ = [
    "DATABASE_UNAVAILABLE",
    "LOGIN_REFUSED",
    "check_database_url",
    "connect",
    "create_pool",
    "keep_session",
    "login_refused",
    "quiet_pool_reconnects",
]

DEFAULT_MIN_POOL = 1
DEFAULT_MAX_POOL = 10
DEFAULT_COMMAND_TIMEOUT = 60.0


def check_database_url(database_url: str) -> str:
    """Return ``database_url`` or raise ConfigError when it is not a PostgreSQL URL."""
    if not database_url or not database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"not a PostgreSQL URL: {database_url!r}",
            hint="e.g. postgresql://user:password@127.0.0.1:5432/claw_ledger, "
            "or run `claw-ledger services up`",
        )
    return database_url


async def connect(database_url: str, *, timeout: float = 10.0, **kwargs: Any) -> asyncpg.Connection:
    """One asyncpg connection; close it when done.

    Raises ServiceError when the server cannot be reached.
    """
    check_database_url(database_url)
    try:
        return await asyncpg.connect(database_url, timeout=timeout, **kwargs)
    except (OSError, TimeoutError) as exc:
        raise _unreachable(database_url, exc) from exc
    except LOGIN_REFUSED as exc:
        raise login_refused(database_url, exc) from exc


def _unreachable(database_url: str, exc: BaseException) -> ServiceError:
    return ServiceError(
        f"cannot connect to PostgreSQL at {_redact(database_url)}: {exc}",
        hint="is it running? `claw-ledger services status`",
    )


#: what a server that answers says when it will not let this URL in: the user, its
#: password or the database is wrong. Unlike an outage, waiting does not mend it.
LOGIN_REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.InvalidAuthorizationSpecificationError,  # 28000, 28P01: user, password, pg_hba
    asyncpg.InvalidCatalogNameError,  # 3D000: no such database
)


def login_refused(database_url: str, exc: BaseException) -> ServiceError:
    """The error that says which part of ``database_url`` the server refused, and
    where the right one is kept."""
    where = _redact(database_url)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return ServiceError(
            f"PostgreSQL at {where} has no such database: {exc}",
            hint="check the database name in the URL, or create the database (CREATE DATABASE)"
            " and run `claw-ledger migrate`, which creates the schema in it",
        )
    return ServiceError(
        f"PostgreSQL at {where} refused the login: {exc}",
        hint="check the user and password in the URL (--database-url, $CLAW_LEDGER_WRITER_URL,"
        " $CLAW_LEDGER_READER_URL). The ledger roles' passwords are those of the state dir"
        " that created them or last ran `claw-ledger migrate --rotate-role-passwords` (its"
        " db-roles.json); `claw-ledger services up` with that state dir prints the URLs that"
        " match",
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pool ``reset`` that does nothing beyond asyncpg's own rollback of an open
    transaction.

    The default reset (``RESET ALL``, ``UNLISTEN *``, ...) is one more round trip on
    every release. Use it only for a pool whose sessions nothing changes: no SET,
    LISTEN, advisory lock or cursor outside a transaction.
    """


#: what a client meets while the server is down, starting up or shutting down: worth
#: riding out, never a bug. A shutdown ends open sessions with 57P01 (or 57P02 after a
#: crash) and refuses new ones with 57P03 until it is over; a full server refuses
#: them with 53300.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


class _OneLineWhenUnavailable(logging.Filter):
    """asyncpg's pool logs a full traceback each time it fails to reconnect its
    connection floor, every few seconds of a database outage. The services
    report the outage themselves ("database unavailable (attempt N) ..."), so
    those records keep one line: the message and the error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, DATABASE_UNAVAILABLE):
            record.msg = f"{record.getMessage()}: {error}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


_POOL_LOG_FILTER = _OneLineWhenUnavailable()


def quiet_pool_reconnects() -> None:
    """Install :class:`_OneLineWhenUnavailable` on asyncpg's pool logger (once)."""
    logger = logging.getLogger("asyncpg.pool")
    if _POOL_LOG_FILTER not in logger.filters:
        logger.addFilter(_POOL_LOG_FILTER)


async def create_pool(
    database_url: str,
    *,
    min_size: int = DEFAULT_MIN_POOL,
    max_size: int = DEFAULT_MAX_POOL,
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    **kwargs: Any,
) -> asyncpg.Pool:
    """An opened pool; use ``async with pool.acquire() as conn`` and ``await
    pool.close()`` (or ``async with await create_pool(url) as pool``).

    Raises ServiceError when the server cannot be reached.
    """
    check_database_url(database_url)
    quiet_pool_reconnects()
    try:
        pool = await asyncpg.create_pool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            max_inactive_connection_lifetime=300.0,
            **kwargs,
        )
    except (OSError, TimeoutError) as exc:
        raise _unreachable(database_url, exc) from exc
    except LOGIN_REFUSED as exc:
        raise login_refused(database_url, exc) from exc
    return pool


def _redact(database_url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or "@" not in rest:
        return database_url
    userinfo, _, hostpart = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}" if ":" in userinfo else database_url
