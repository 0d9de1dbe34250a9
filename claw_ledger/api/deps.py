"""Helpers of the route modules: a pooled connection, a plugged-in feature."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Request

from claw_ledger.api.errors import ApiError
from ledger.errors import ReasonCode
from ledger.instants import with_instants
from storage.api_queries import table_exists

__all__ = ["connection", "feature_record", "not_found", "served_feature_record"]


@asynccontextmanager
async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.pool.acquire() as conn:
        yield conn


def not_found(what: str, code: ReasonCode = ReasonCode.API_NOT_FOUND) -> ApiError:
    return ApiError(404, code, what)


async def feature_record(
    request: Request, conn: asyncpg.Connection, name: str, key: str
) -> dict[str, Any] | None:
    """The record ``key`` of feature ``name`` (:class:`claw_ledger.api.app.Features`),
    or 503 ``API_NOT_ENABLED`` saying what is missing: its table or its source."""
    from claw_ledger.api.app import FEATURE_TABLES

    source = getattr(request.app.state.config.features, name)
    table, what = FEATURE_TABLES[name]
    if source is not None:
        table = source.table
    # a table, once there, stays (migrations only add): asked once per service, not
    # on every request of a route that needs it
    present: set[str] = request.app.state.tables_present
    if table and table not in present:
        if not await table_exists(conn, table):
            raise ApiError(
                503,
                ReasonCode.API_NOT_ENABLED,
                f"this ledger has no {what}: its table {table} does not exist",
            )
        present.add(table)
    if source is None:
        raise ApiError(503, ReasonCode.API_NOT_ENABLED, f"this service does not serve {what} yet")
    record: dict[str, Any] | None = await source.fetch(conn, key)
    return record


async def served_feature_record(
    request: Request, name: str, key: str, missing: str
) -> dict[str, Any]:
    """The record ``key`` of feature ``name`` on a connection of its own, its times
    spelled as every document spells them; 404 saying ``missing`` when there is none
    (503 as :func:`feature_record` says)."""
    async with connection(request) as conn:
        record = await feature_record(request, conn, name, key)
    if record is None:
        raise not_found(missing)
    return with_instants(record)
