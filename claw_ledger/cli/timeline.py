"""``claw-ledger timeline``: what happened, under which key, when."""

from __future__ import annotations

import re
from typing import Any

import click

from claw_ledger.cli.common import (
    EVENT_TYPE,
    echo,
    emit_json,
    json_option,
    limit_option,
    print_table,
    run_async,
    settings,
    terminal,
    zoned_time_option,
)
from ledger.instants import format_instant
from ledger.timeline import summarize

#: a did:key (multibase base58btc): long enough that a table cell breaks it
_DID_KEY = re.compile(r"did:key:z[1-9A-HJ-NP-Za-km-z]{20,}")


def shorten_keys(text: str) -> str:
    """``text`` with each did:key shortened to its first and last characters
    (``did:key:z6Mkqp…9mRYp56w``): still told apart, and one line in a table."""
    return _DID_KEY.sub(lambda m: f"{m.group()[:14]}…{m.group()[-8:]}", text)


__all__ = ["command"]


@click.command("timeline")
@click.option("--stream", help="Only this stream, e.g. job:42.")
@click.option("--type", "event_type", type=EVENT_TYPE, metavar="TYPE", help="Only this type.")
@click.option("--signer", help="Only events signed by this DID.")
@click.option("--since", help="From this time (inclusive), ISO 8601 with zone.")
@click.option("--until", help="Before this time, ISO 8601 with zone.")
@click.option(
    "--after",
    metavar="CURSOR",
    help="Start after this cursor: the next_cursor (or `more:` line) of the previous page.",
)
@limit_option(50)
@click.option(
    "--wide",
    is_flag=True,
    help="Show streams and signers whole (the table shortens the keys in them).",
)
@json_option("JSON with rows and next_cursor.")
def command(
    stream: str | None,
    event_type: str | None,
    signer: str | None,
    since: str | None,
    until: str | None,
    after: str | None,
    limit: int,
    wide: bool,
    as_json: bool,
) -> None:
    """Ledger events, one keyset page at a time: in ledger order, or with --since
    or --until in the order they occurred (ties by position), as the HTTP API
    gives them.

    \b
    Examples:
      claw-ledger timeline --stream job:demo-1
      claw-ledger timeline --type token.issued --since 2026-11-26T00:00:00Z --json
      claw-ledger timeline --after 200 --limit 100   # the next page
    """
    from claw_ledger.reads import TimelineFilter, timeline_page
    from storage.ledger_queries import parse_timeline_cursor, timeline_cursor

    by_time = since is not None or until is not None
    try:
        position, moment = parse_timeline_cursor(after, by_time) if after else (None, None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--after'") from None
    page = run_async(
        timeline_page(
            settings(),
            TimelineFilter(
                stream=stream,
                event_type=event_type,
                signer=signer,
                since=zoned_time_option(since, "--since"),
                until=zoned_time_option(until, "--until"),
                after=position,
                limit=limit,
                by_time=by_time,
                after_time=moment,
            ),
        )
    )
    more = page.next_cursor is not None and page.rows
    cursor = timeline_cursor(page.rows[-1], by_time) if more else None
    if as_json:
        emit_json({"rows": [_json_row(r) for r in page.rows], "next_cursor": cursor})
        return
    rows = [
        (
            str(row["position"]),
            row["occurred_at"].strftime("%Y-%m-%d %H:%M:%S"),
            row["event_type"],
            row["stream"] if wide else shorten_keys(row["stream"]),
            row["producer"] if wide else "…" + row["producer"][-10:],
            summarize(row["event_type"], row["body"]),
        )
        for row in page.rows
    ]
    if not rows:
        echo("no events match" + (" after this cursor" if after else ""))
        return
    print_table(
        "claw-ledger timeline",
        ("pos", "occurred_at", "type", "stream", "signer", "summary"),
        rows,
        # a shortened signer is 11 characters: kept whole; a whole one takes a share
        widths={"pos": 0, "occurred_at": 2, "type": 3, "stream": 4, "summary": 6}
        | {"signer": 3 if wide else 0},
        min_widths={"occurred_at": 11, "type": 14},
    )
    if not wide and rows:
        terminal().print("keys in streams and signers are shortened: --wide shows them whole")
    if cursor is not None:
        terminal().print(f"more: claw-ledger timeline --after {cursor} ...")


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("occurred_at", "recorded_at"):
        out[name] = format_instant(row[name])
    return out
