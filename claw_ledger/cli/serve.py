"""``claw-ledger serve``: the HTTP API (docs/api.md, ADR 0018)."""

from __future__ import annotations

import contextlib
import logging
import socket
import sys

import click

from claw_ledger.cli.common import (
    echo,
    log_options,
    readiness_options,
    resolve_key,
    settings,
)

__all__ = ["command"]

log = logging.getLogger("claw_ledger.api")

DEFAULT_HOST = "127.0.0.1"
#: as the processor's start (``consumers.kafka_engine.KAFKA_START_ATTEMPTS``; a
#: test holds them equal): not imported, so that ``--help`` stays light
KAFKA_START_ATTEMPTS = 8
DEFAULT_PORT = 8088
#: uvicorn's exit code when the application did not start (its lifespan failed)
_STARTUP_FAILED = 3
_PORT = click.IntRange(0, 65535)


@click.command("serve")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on (loopback by default; put TLS in front of anything else).",
)
@click.option(
    "--port", type=_PORT, default=DEFAULT_PORT, show_default=True, help="Port to listen on."
)
@click.option(
    "--max-body",
    type=click.IntRange(1, 16 * 1024 * 1024),
    default=64 * 1024,
    show_default=True,
    help="Largest request body, in bytes (413 above).",
)
@click.option(
    "--max-page",
    type=click.IntRange(1, 10_000),
    default=1000,
    show_default=True,
    help="Largest page of a list route (400 above).",
)
@readiness_options(
    "/readyz fails when the processors are more records than this behind.",
    "/readyz fails when no processor has beaten for this long (each beats every 0.5 s).",
)
@click.option(
    "--authorize-key",
    default="authorizer",
    show_default=True,
    metavar="KEY",
    help="The key (role authorizer) that signs POST /v1/authorize's decisions; without"
    " it the route answers 503 API_NOT_ENABLED.",
)
@click.option(
    "--no-authorize",
    is_flag=True,
    help="Serve without POST /v1/authorize: no key, and Kafka need not answer.",
)
@click.option(
    "--kafka-attempts",
    type=click.IntRange(1, 100),
    default=KAFKA_START_ATTEMPTS,
    show_default=True,
    help="Tries to reach Kafka at start, backing off from 0.5 s to 10 s (8: about 35 s),"
    " before giving up with exit 69; only the authorizer needs Kafka.",
)
@log_options()
def command(
    host: str,
    port: int,
    max_body: int,
    max_page: int,
    max_lag: int,
    max_beat_age: float,
    authorize_key: str,
    no_authorize: bool,
    kafka_attempts: int,
) -> None:
    """Serve the HTTP API and the Trust Pulse pages: queries, authorize, /metrics,
    /healthz, /readyz, and /pulse for reviewers.

    Reads the ledger as the reader database role ($CLAW_LEDGER_READER_URL, or the
    one `services up` recorded). Every route but the probes needs an API key
    (`claw-ledger apikey create NAME --role reader`). The OpenAPI document is at
    /openapi.json, a browsable one at /docs.

    \b
    Example:
      claw-ledger serve --port 8088 &
      curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8088/v1/timeline?limit=5
    """
    import uvicorn

    from claw_ledger.api import ApiConfig, create_app
    from claw_ledger.api.features import ledger_features, mount_trust_pulse
    from claw_ledger.api.limits import SERVER_OPTIONS
    from ledger.errors import ConfigError

    listening = _listen(host, port)
    resolved = settings()
    key = None
    if not no_authorize:
        try:
            key = resolve_key(authorize_key)
        except ConfigError as exc:
            log.warning("POST /v1/authorize is off: %s", exc)
    config = ApiConfig.from_settings(
        resolved,
        max_body=max_body,
        max_page=max_page,
        max_lag=max_lag,
        max_beat_age=max_beat_age,
        features=ledger_features(resolved, key),
    )
    if key is not None and config.kafka_bootstrap is not None:
        # before uvicorn: a failed start inside its lifespan is a page of traceback
        _wait_for_kafka(config.kafka_bootstrap, kafka_attempts)
    app = create_app(config=config)
    mount_trust_pulse(app, config.reader_url)
    port = listening.getsockname()[1]  # the one the system chose for --port 0
    server = uvicorn.Server(
        # uvicorn's records (the access log too) go through the service's own handler
        uvicorn.Config(app, host=host, port=port, log_config=None, **SERVER_OPTIONS)
    )
    # said at every --log-level (its logger's own level passes it): with --port 0
    # it is the only place the port is told
    address = logging.getLogger("claw_ledger.api.address")
    address.setLevel(logging.INFO)
    address.info("claw-ledger API on http://%s:%d (docs at /docs)", host, port)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listening])
    if not server.started:
        sys.exit(_STARTUP_FAILED)


def _listen(host: str, port: int) -> socket.socket:
    """The socket ``serve`` listens on, bound before anything else starts (as
    uvicorn binds its own). A port in use or an address this machine does not
    have is one line and exit 2, before the wait for Kafka, not a uvicorn log
    line after the service said where it listens."""
    from ledger.errors import ConfigError

    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="--port another port (or 0: any free one), --host an address of this machine",
        ) from None
    return listening


def _wait_for_kafka(bootstrap: str, attempts: int) -> None:
    """Wait for the Kafka the authorizer publishes to; exit 69 (EX_UNAVAILABLE)
    with what to do when it never answers."""
    import asyncio

    from claw_ledger.logs import report_fatal
    from consumers.failures import KafkaUnavailableError
    from consumers.kafka_engine import wait_for_kafka

    try:
        asyncio.run(wait_for_kafka(bootstrap, attempts))
    except KafkaUnavailableError as exc:
        report_fatal(
            f"error: POST /v1/authorize publishes its decisions to Kafka, and {exc}\n"
            "hint: start it (`claw-ledger up`, or `claw-ledger services status` to see it),"
            " check --kafka / CLAW_LEDGER_KAFKA, or serve the queries alone with --no-authorize",
            echo,
        )
        sys.exit(exc.exit_code)
