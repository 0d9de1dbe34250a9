"""The HTTP API's app, built without servers: routes, scopes, OpenAPI, key form."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from claw_ledger.api import ApiConfig, create_app
from claw_ledger.api.auth import route_scope, secured
from claw_ledger.apikeys import ROLE_SCOPES, ROLES, matches, new_key, parse_key, roles_with

CONFIG = ApiConfig(
    reader_url="postgresql://reader@127.0.0.1:1/none", kafka_bootstrap=None, ingress_topic="t"
)


def test_every_route_declares_who_may_call_it() -> None:
    app = create_app(config=CONFIG)
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 14
    assert all(route_scope(r.openapi_extra) in {"public", "read", "authorize"} for r in routes)


def test_an_app_with_an_undecided_route_is_refused() -> None:
    from claw_ledger.api import routes_records

    async def _stray() -> dict[str, str]:
        return {}

    routes_records.router.add_api_route("/stray", _stray)
    try:
        with pytest.raises(RuntimeError, match="/v1/stray declares no scope"):
            create_app(config=CONFIG)
    finally:
        routes_records.router.routes[:] = [
            r for r in routes_records.router.routes if getattr(r, "path", "") != "/v1/stray"
        ]
    create_app(config=CONFIG)


def test_the_openapi_document_names_the_scopes_and_the_error_body() -> None:
    document = create_app(config=CONFIG).openapi()
    assert document["openapi"].startswith("3.")
    assert "ErrorBody" in document["components"]["schemas"]
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    operation = document["paths"]["/v1/timeline"]["get"]
    assert operation["x-claw-scope"] == "read"
    assert {"401", "403", "400"} <= set(operation["responses"])
    assert document["paths"]["/healthz"]["get"]["x-claw-scope"] == "public"


def test_recorded_times_are_documented_as_date_times_in_their_one_spelling() -> None:
    schemas = create_app(config=CONFIG).openapi()["components"]["schemas"]
    for model, field in (
        ("TimelineRow", "occurred_at"),
        ("TimelineRow", "recorded_at"),
        ("QuarantineRow", "received_at"),
    ):
        described = schemas[model]["properties"][field]
        assert described["type"] == "string" and described["format"] == "date-time"
        assert described["examples"] == ["2026-02-12T00:00:12.500000Z"]


def test_secured_keeps_a_routes_own_responses() -> None:
    kwargs = secured("read", {200: {"description": "text"}})
    assert kwargs["responses"][200] == {"description": "text"}
    assert 401 in kwargs["responses"]


def test_keys_are_random_parsed_and_compared_by_hash() -> None:
    one, two = new_key(), new_key()
    assert one.key != two.key and one.key.startswith("clk_")
    assert parse_key(one.key) == one.key_id
    assert matches(one.key, one.key_sha256) and not matches(two.key, one.key_sha256)
    assert one.key not in one.key_sha256
    for bad in ("", "clk_", one.key + "x", one.key.replace("clk_", "clx_"), "clk_' OR 1=1 --"):
        assert parse_key(bad) is None


def test_roles_grant_scopes_least_first() -> None:
    assert roles_with("read") == ("reader", "operator", "admin")
    assert roles_with("authorize") == ("runtime", "admin")
    assert set(ROLE_SCOPES) == set(ROLES)
    assert ROLE_SCOPES["runtime"] == frozenset({"authorize"})


class _Conn:
    """Answers to_regclass from ``tables``; counts the questions."""

    def __init__(self, tables: set[str]) -> None:
        self.tables = tables
        self.asked: list[str] = []

    async def fetchval(self, sql: str, table: str) -> bool:
        assert "to_regclass" in sql
        self.asked.append(table)
        return table in self.tables


async def test_a_feature_table_is_looked_up_until_it_is_there_then_never_again() -> None:
    from types import SimpleNamespace
    from typing import Any

    from claw_ledger.api.app import Features, Source
    from claw_ledger.api.deps import feature_record
    from claw_ledger.api.errors import ApiError

    async def fetch(conn: Any, key: str) -> dict[str, Any]:
        return {"key": key}

    features = Features(run_bundle=Source("bundles", fetch))
    app = create_app(config=ApiConfig(**{**CONFIG.__dict__, "features": features}))
    request: Any = SimpleNamespace(app=app)
    conn = _Conn(set())
    with pytest.raises(ApiError) as refused:
        await feature_record(request, conn, "run_bundle", "job-1")
    assert refused.value.status == 503
    conn.tables.add("bundles")  # migrated while the service runs
    assert await feature_record(request, conn, "run_bundle", "job-1") == {"key": "job-1"}
    assert await feature_record(request, conn, "run_bundle", "job-2") == {"key": "job-2"}
    assert conn.asked == ["bundles", "bundles"]
