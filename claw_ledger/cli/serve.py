"""``claw-ledger serve``: the HTTP API (docs/api.md, ADR 0018)."""

from __future__ import annotations

import click

from claw_ledger.cli.common import choice_option, resolve_key, settings

__all__ = ["command"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8088


@click.command("serve")
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on (loopback by default; put TLS in front of anything else).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True)
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
@click.option(
    "--max-lag",
    type=click.IntRange(0),
    default=10_000,
    show_default=True,
    help="/readyz fails when the processors are more messages than this behind.",
)
@click.option(
    "--authorize-key",
    default="authorizer",
    show_default=True,
    metavar="KEY",
    help="The key (role authorizer) that signs POST /v1/authorize's decisions; without"
    " it the route answers 503 API_NOT_ENABLED.",
)
@choice_option("--log-level", ("critical", "error", "warning", "info", "debug"), default="info")
def command(
    host: str,
    port: int,
    max_body: int,
    max_page: int,
    max_lag: int,
    authorize_key: str,
    log_level: str,
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

    resolved = settings()
    try:
        key = resolve_key(authorize_key)
    except ConfigError as exc:
        click.echo(f"warning: POST /v1/authorize is off: {exc}", err=True)
        key = None
    config = ApiConfig.from_settings(
        resolved,
        max_body=max_body,
        max_page=max_page,
        max_lag=max_lag,
        features=ledger_features(resolved, key),
    )
    app = create_app(config=config)
    mount_trust_pulse(app, config.reader_url)
    click.echo(f"claw-ledger API on http://{host}:{port} (docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, **SERVER_OPTIONS)
