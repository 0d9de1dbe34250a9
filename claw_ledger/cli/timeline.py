"""``claw-ledger timeline``: what happened, under which key, when."""

from __future__ import annotations

from typing import Any

import click

from claw_ledger.cli.common import (
    CURSOR,
    emit_json,
    json_option,
    print_table,
    run_async,
    settings,
    terminal,
    zoned_time_option,
)
from ledger.instants import format_instant
from ledger.timeline import summarize

__all__ = ["command"]


@click.command("timeline")
@click.option("--stream", help="Only this stream, e.g. job:42.")
@click.option("--type", "event_type", help="Only this event type, e.g. token.issued.")
@click.option("--signer", help="Only events signed by this DID.")
@click.option("--since", help="From this time (inclusive), ISO 8601 with zone.")
@click.option("--until", help="Before this time, ISO 8601 with zone.")
@click.option("--after", type=CURSOR, help="Cursor: start after this ledger position.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option("JSON with rows and next_cursor.")
def command(
    stream: str | None,
    event_type: str | None,
    signer: str | None,
    since: str | None,
    until: str | None,
    after: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Ledger events, oldest first, one keyset page at a time.

    \b
    Examples:
      claw-ledger timeline --stream job:demo-1
      claw-ledger timeline --type token.issued --since 2026-11-26T00:00:00Z --json
      claw-ledger timeline --after 200 --limit 100   # the next page
    """
    from claw_ledger.reads import TimelineFilter, timeline_page

    page = run_async(
        timeline_page(
            settings(),
            TimelineFilter(
                stream=stream,
                event_type=event_type,
                signer=signer,
                since=zoned_time_option(since),
                until=zoned_time_option(until),
                after=after,
                limit=limit,
            ),
        )
    )
    if as_json:
        emit_json({"rows": [_json_row(r) for r in page.rows], "next_cursor": page.next_cursor})
        return
    print_table(
        "claw-ledger timeline",
        ("pos", "occurred_at", "type", "stream", "signer", "summary"),
        (
            (
                str(row["position"]),
                row["occurred_at"].strftime("%Y-%m-%d %H:%M:%S"),
                row["event_type"],
                row["stream"],
                "…" + row["producer"][-10:],
                summarize(row["event_type"], row["body"]),
            )
            for row in page.rows
        ),
    )
    if page.next_cursor is not None:
        terminal().print(f"more: claw-ledger timeline --after {page.next_cursor} ...")


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("occurred_at", "recorded_at"):
        out[name] = format_instant(row[name])
    return out
