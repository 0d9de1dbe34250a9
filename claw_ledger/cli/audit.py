"""``claw-ledger audit`` and ``claw-ledger quarantine``: verify the ledger, see what was refused."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from claw_ledger.cli.common import emit_json, run_async, settings

__all__ = ["audit_command", "command", "quarantine_command"]


@click.command("audit")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--signatures/--no-signatures",
    default=True,
    help="Also re-verify every envelope's hash and signature (slower).",
)
def audit_command(as_json: bool, signatures: bool) -> None:
    """Verify the whole ledger before trusting it: chain, sequence, hashes, signatures.

    Walks every partition's hash chain from the stored raw bytes; a missing,
    reordered or altered row is reported. Exit 0 when clean, 1 otherwise.
    """
    report = run_async(_audit(signatures, show_progress=not as_json and sys.stderr.isatty()))
    if as_json:
        emit_json(report)
    else:
        console = Console()
        console.print(
            f"checked {report['events']:,} events in {len(report['partitions'])} partition(s):"
            f" {'OK' if report['ok'] else 'PROBLEMS FOUND'}"
        )
        for problem in report["problems"][:50]:
            console.print(
                f"  partition {problem['partition']} seq {problem['ledger_seq']}:"
                f" {problem['problem']}"
            )
    sys.exit(0 if report["ok"] else 1)


async def _audit(signatures: bool, show_progress: bool) -> dict[str, Any]:
    from claw_ledger.reads import chain_heads, iter_chain
    from ledger.chain import ChainLink, verify_chain
    from ledger.verify import Verified, verify_message

    problems: list[dict[str, Any]] = []
    partitions: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, int], tuple[int, str]] = {}
    current: list[ChainLink] = []
    current_key: tuple[str, int] | None = None
    count = 0

    def flush() -> None:
        for p in verify_chain(current):
            problems.append(
                {"partition": p.partition, "ledger_seq": p.ledger_seq, "problem": p.problem}
            )
        current.clear()

    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), disable=not show_progress
    )
    with progress:
        task = progress.add_task("auditing", total=None)
        async for row in iter_chain(settings()):
            key = (row["kafka_topic"], row["kafka_partition"])
            if key != current_key:
                flush()
                current_key = key
            partitions[key] = partitions.get(key, 0) + 1
            last[key] = (row["ledger_seq"], row["chain_hash"])
            raw = bytes(row["envelope_raw"])
            current.append(
                ChainLink(
                    row["kafka_partition"],
                    row["ledger_seq"],
                    row["event_id"],
                    raw,
                    row["prev_chain_hash"],
                    row["chain_hash"],
                )
            )
            if signatures:
                verdict = verify_message(raw, max_bytes=1 << 30)
                if not isinstance(verdict, Verified) or verdict.event.event_id != row["event_id"]:
                    problems.append(
                        {
                            "partition": row["kafka_partition"],
                            "ledger_seq": row["ledger_seq"],
                            "problem": "envelope does not verify",
                        }
                    )
            count += 1
            if count % 5000 == 0:
                progress.update(task, description=f"auditing: {count:,} events")
        flush()
    # a missing tail leaves no gap: compare each chain's end with the committed head
    for (topic, partition), (seq, head) in (await chain_heads(settings())).items():
        if seq == 0:
            continue
        if last.get((topic, partition)) != (seq, head):
            found = last.get((topic, partition), (0, None))[0]
            problems.append(
                {
                    "partition": partition,
                    "ledger_seq": seq,
                    "problem": f"chain ends at seq {found}, processor committed {seq}",
                }
            )
    problems.extend(await _projections_match_a_rebuild())
    return {
        "ok": not problems,
        "events": count,
        "partitions": {f"{t}/{p}": n for (t, p), n in partitions.items()},
        "problems": problems,
    }


async def _projections_match_a_rebuild() -> list[dict[str, Any]]:
    """Every projection against a verified rebuild from the events (``claw-ledger replay
    --compare``): a break, or any row that differs, is a problem."""
    from claw_ledger.replaying import rebuild_and_compare

    result = await rebuild_and_compare(settings())
    broken = result.fold.broken
    if broken is not None:
        return [
            {
                "partition": broken.partition,
                "ledger_seq": broken.ledger_seq,
                "problem": f"replay breaks: {broken.code.value}: {broken.detail}",
            }
        ]
    return [
        {"partition": None, "ledger_seq": None, "problem": f"projection differs: {diff}"}
        for diff in result.diffs or []
    ]


@click.command("quarantine")
@click.option("--reason", help="Only this reason code, e.g. SIGNATURE_INVALID.")
@click.option("--after", type=int, default=0, help="Cursor: start after this quarantine id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def quarantine_command(reason: str | None, after: int, limit: int, as_json: bool) -> None:
    """Messages the processor refused, with their reason codes (raw bytes kept)."""
    from claw_ledger.reads import list_quarantine

    page = run_async(list_quarantine(settings(), reason=reason, after=after, limit=limit))
    if as_json:
        rows = []
        for row in page.rows:
            out = dict(row)
            out["received_at"] = row["received_at"].isoformat()
            out["raw"] = bytes(row["raw"]).decode("utf-8", "replace")
            rows.append(out)
        emit_json({"rows": rows, "next_cursor": page.next_cursor})
        return
    table = Table(title="claw-ledger quarantine")
    for column in ("id", "received_at", "reason", "event_id", "detail"):
        table.add_column(column, overflow="fold")
    for row in page.rows:
        table.add_row(
            str(row["id"]),
            row["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
            row["reason_code"],
            row["event_id"] or "-",
            row["detail"][:120],
        )
    Console().print(table)


command = audit_command
