"""The HTTP API's application factory: :func:`create_app` (ADR 0018).

The service reads the ledger as the **reader** database role (SELECT only),
in read-only transactions on top, so even a single owner URL cannot write
through it. Features whose data other components produce (checkpoints,
inclusion proofs, proof bundles, Trust Pulse records, authorization
decisions) are plugged in through :class:`Features`; a route whose feature
is missing answers 503 ``API_NOT_ENABLED`` and says why.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import asyncpg
from fastapi import FastAPI
from fastapi.routing import APIRoute

from claw_ledger import __version__
from claw_ledger.api.auth import KeyCache, route_scope
from claw_ledger.api.authorize_path import AuthorizeFastPath
from claw_ledger.api.errors import install_error_handlers
from claw_ledger.api.limits import DEFAULT_MAX_BODY, BodyLimit
from claw_ledger.api.metrics import ApiMetrics
from claw_ledger.config import Settings, effective_database_url, effective_kafka_bootstrap
from claw_ledger.ledger_health import (
    DEFAULT_MAX_BEAT_AGE,
    DEFAULT_MAX_LAG,
    KafkaOffsets,
    LedgerCounters,
)
from claw_ledger.topics import topics_for
from ledger.errors import ConfigError
from storage import create_pool, keep_session

__all__ = ["DEFAULT_MAX_PAGE", "ApiConfig", "Authorizer", "Features", "Source", "create_app"]

DEFAULT_MAX_PAGE = 1000
DEFAULT_STATEMENT_TIMEOUT_MS = 10_000


class Authorizer(Protocol):
    """The enforcement service behind ``POST /v1/authorize``."""

    async def start(self) -> None: ...

    async def decide(self, request: Any) -> Any: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Source:
    """Where a feature's records come from: ``fetch(conn, key)`` gives the record or
    ``None``; ``table`` is the table its migration creates (checked with to_regclass)."""

    table: str
    fetch: Callable[[asyncpg.Connection, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Features:
    """What other components provide; ``None`` = not wired in this build."""

    authorizer: Authorizer | None = None
    #: key ignored ("latest"): the newest signed checkpoint
    latest_checkpoint: Source | None = None
    #: key: an event id; its inclusion proof to the newest checkpoint
    inclusion_proof: Source | None = None
    #: key: a job id; its sealed proof bundle
    run_bundle: Source | None = None
    #: key: a Trust Pulse id
    pulse: Source | None = None


#: the table each feature's migration creates, checked when no source is wired
FEATURE_TABLES: dict[str, tuple[str, str]] = {
    "run_bundle": ("bundles", "proof bundles (migration 0012)"),
    "pulse": ("pulse_records", "Trust Pulse records (migration 0012)"),
    "latest_checkpoint": ("", "signed checkpoints (the checkpointer, migration 0010)"),
    "inclusion_proof": ("", "inclusion proofs (the checkpointer, migration 0010)"),
}


@dataclass(frozen=True)
class ApiConfig:
    reader_url: str
    kafka_bootstrap: str | None
    ingress_topic: str
    max_body: int = DEFAULT_MAX_BODY
    max_page: int = DEFAULT_MAX_PAGE
    max_lag: int = DEFAULT_MAX_LAG
    #: /readyz: the newest processor heartbeat may be this many seconds old
    max_beat_age: float = DEFAULT_MAX_BEAT_AGE
    pool_size: int = 10
    probe_timeout: float = 5.0
    features: Features = field(default_factory=Features)
    #: answer POST /v1/authorize in front of FastAPI (ADR 0028); off, the FastAPI
    #: route answers with the same steps (the tests compare the two)
    authorize_fast_path: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ApiConfig:
        """The reader's URL and Kafka of ``settings`` (Kafka may be absent: then the
        service answers, but ``/readyz`` says not ready)."""
        try:
            kafka: str | None = effective_kafka_bootstrap(settings)
        except ConfigError:
            kafka = None
        config = cls(
            reader_url=effective_database_url(settings, role="reader"),
            kafka_bootstrap=kafka,
            ingress_topic=topics_for(settings).ingress,
        )
        return replace(config, **overrides)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


def create_app(settings: Settings | None = None, *, config: ApiConfig | None = None) -> FastAPI:
    """The API over the ledger of ``settings`` (or of an explicit ``config``)."""
    if config is None:
        if settings is None:
            raise ValueError("give settings or config")
        config = ApiConfig.from_settings(settings)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # min_size 0: the service starts (and /healthz answers) while Postgres is down
        app.state.pool = await create_pool(
            config.reader_url,
            min_size=0,
            max_size=config.pool_size,
            command_timeout=DEFAULT_STATEMENT_TIMEOUT_MS / 1000 + 5,
            init=_init_connection,
            # read-only sessions that nothing changes: no reset round trip per request
            reset=keep_session,
            server_settings={
                "default_transaction_read_only": "on",
                "statement_timeout": str(DEFAULT_STATEMENT_TIMEOUT_MS),
                "application_name": "claw-ledger-api",
            },
        )
        app.state.offsets = (
            KafkaOffsets(config.kafka_bootstrap, timeout=config.probe_timeout)
            if config.kafka_bootstrap
            else None
        )
        app.state.keys.start()
        authorizer = config.features.authorizer
        if authorizer is not None:
            await authorizer.start()
        try:
            yield
        finally:
            if authorizer is not None:
                await authorizer.stop()
            await app.state.keys.close()
            if app.state.offsets is not None:
                await app.state.offsets.close()
            await app.state.pool.close()

    app = FastAPI(
        title="claw-ledger",
        version=__version__,
        summary="Signed, verified evidence ledger for AI agents",
        description="Query the ledger, ask for authorization decisions, watch its health. "
        "Every route but `/healthz` and `/readyz` needs `Authorization: Bearer KEY` "
        "(`claw-ledger apikey create NAME --role ROLE`). Refusals are "
        '`{"error": {"reason_code", "message"}}`.',
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        # the service's figures are its Prometheus /metrics; FastAPI's OpenTelemetry
        # hooks would only ask, on every request, whether a provider was set up
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.config = config
    app.state.metrics = metrics
    app.state.keys = KeyCache(config.reader_url)
    app.state.counters = LedgerCounters()
    app.state.snapshot_lock = asyncio.Lock()
    app.state.snapshot_at = 0.0
    #: feature tables seen to exist (claw_ledger.api.deps.feature_record)
    app.state.tables_present = set()
    install_error_handlers(app)
    if config.authorize_fast_path:
        app.add_middleware(AuthorizeFastPath)
    # added last, so outermost: the limits hold for the fast path too
    app.add_middleware(BodyLimit, max_body=config.max_body)

    from claw_ledger.api import routes_ledger, routes_records, routes_service

    for module in (routes_service, routes_ledger, routes_records):
        # the routes themselves, not include_router: this FastAPI wraps included
        # routers lazily, and the check below must see every route. The service
        # routes come first: a request is matched against the routes in order,
        # and POST /v1/authorize is the one asked a thousand times a second
        app.router.routes.extend(module.router.routes)
    _check_every_route_is_secured(app)
    _document_errors(app)
    return app


def _check_every_route_is_secured(app: FastAPI) -> None:
    """Refuse to build an app with a route that decided nothing about its callers."""
    for route in app.routes:
        if isinstance(route, APIRoute) and route_scope(route.openapi_extra) is None:
            raise RuntimeError(f"route {route.path} declares no scope: use secured() or public()")


def _document_errors(app: FastAPI) -> None:
    """Put the error document in the OpenAPI components (the routes reference it)."""
    from fastapi.openapi.utils import get_openapi

    from claw_ledger.api.models import ErrorBody

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["ErrorBody"] = ErrorBody.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            defs = components["ErrorBody"].pop("$defs", {})
            components.update(defs)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
