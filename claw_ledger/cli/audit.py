"""``claw-ledger audit`` and ``claw-ledger quarantine``: verify the ledger, see what was refused."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from claw_ledger.cli.common import (
    CURSOR,
    REASON_CODE,
    Advance,
    echo,
    emit_json,
    jobs_option,
    json_option,
    limit_option,
    print_table,
    progress_stages,
    run_async,
    settings,
    shows_progress,
)
from ledger.audit import AuditProblem, ProblemKind
from ledger.encoding import raw_as_text
from ledger.instants import format_instant

if TYPE_CHECKING:
    from ledger.replay import StoredEvent
    from ledger.verify import Rejected, Verified

__all__ = ["audit_command", "command", "quarantine_command"]


@click.command("audit")
@json_option()
@click.option(
    "--signatures/--no-signatures",
    default=True,
    show_default="signatures checked",
    help="Re-verify every envelope's hash and signature (--no-signatures: faster, and"
    " trusts the stored bytes' authenticity).",
)
@jobs_option()
def audit_command(as_json: bool, signatures: bool, jobs: int | None) -> None:
    """Verify the whole ledger before trusting it: every column, chain, sequence,
    signature, the quarantine, the control-plane digests and the transparency log.

    Every stored column of an event must be what its raw bytes say, and every
    partition's hash chain must recompute from them; a missing, reordered or
    altered row is reported with its kind (docs/operations.md, "Tamper audit").
    Exit 0 when clean, 1 otherwise.
    """
    report = run_async(_audit(signatures, jobs, quiet=as_json))
    if as_json:
        emit_json(report)
    else:
        echo(
            f"checked {report['events']:,} events in {len(report['partitions'])} partition(s),"
            f" {report['quarantine']:,} quarantine rows and"
            f" {len(report['control_digests'])} control-plane digests,"
            f" {report['transparency_log']['leaves']:,} log leaves and"
            f" {report['transparency_log']['checkpoints']:,} checkpoint(s):"
            f" {'OK' if report['ok'] else 'PROBLEMS FOUND'}"
        )
        if report["archived"] is not None:
            archived = report["archived"]
            echo(
                f"  archived: positions below {archived['before_position']:,}"
                f" ({archived['events']:,} events) are not in the table; their chains verified"
                f" when detached ({archived['detached_at']}) and every chain is checked"
                " from that cut on"
            )
        for problem in report["problems"][:50]:
            echo(f"  {_where(problem)}: {problem['problem']}")
            if problem["expected"] is not None or problem["found"] is not None:
                echo(
                    f"      expected {problem['expected']!s:.200}, found {problem['found']!s:.200}"
                )
        if len(report["problems"]) > 50:
            echo(f"  … and {len(report['problems']) - 50} more (--json lists all)")
    sys.exit(0 if report["ok"] else 1)


def _where(problem: dict[str, Any]) -> str:
    kind = problem["kind"]
    if problem["table"] == "events" and problem["ledger_seq"] is not None:
        column = f" {problem['column']}" if problem["column"] else ""
        topic = f"{problem['topic']}/" if problem["topic"] else ""
        position = f" (position {problem['row']})" if problem["row"] is not None else ""
        return (
            f"{kind} partition {topic}{problem['partition']} seq {problem['ledger_seq']}"
            f"{column}{position}"
        )
    if problem["row"] is not None:
        return f"{kind} {problem['table']} {problem['row']}"
    return f"{kind} {problem['table']}"


async def _audit(signatures: bool, jobs: int | None, *, quiet: bool) -> dict[str, Any]:
    """Every check in turn, each stage a bar on a terminal: the two passes over
    every event (columns and chains, then the verified rebuild) are the long ones."""
    problems: list[AuditProblem] = []
    total = await _stored_events() if shows_progress(quiet) else None
    with progress_stages(quiet=quiet) as stage:
        started = time.monotonic()
        count, partitions, archived = await _audit_events(problems, stage("audit events", total))
        events_seconds = time.monotonic() - started
        quarantined = await _audit_quarantine(problems, stage("audit quarantine", None))
        digests = await _audit_control_digests(problems)
        started = time.monotonic()
        await _projections_match_a_rebuild(
            problems, signatures, jobs, stage("audit rebuild", count)
        )
        rebuild_seconds = time.monotonic() - started
        tlog = await _audit_transparency_log(problems, stage("audit log leaves", None))
    return {
        "ok": not problems,
        "events": count,
        "archived": archived,
        "seconds": {"events": round(events_seconds, 3), "rebuild": round(rebuild_seconds, 3)},
        "partitions": {f"{t}/{p}": n for (t, p), n in partitions.items()},
        "quarantine": quarantined,
        "control_digests": digests,
        "transparency_log": tlog,
        "problems": [p.to_json() for p in problems],
    }


async def _stored_events() -> int:
    from claw_ledger.replaying import LEDGER, source_size

    return await source_size(settings(), LEDGER)


async def _audit_events(
    problems: list[AuditProblem], advance: Advance
) -> tuple[int, dict[tuple[str, int], int], dict[str, Any] | None]:
    """Every event row: its columns against its raw bytes, and its chain (from the
    archive boundary on, when old partitions were detached). (Its signature: in the
    rebuild, which verifies every envelope anyway.)"""
    from claw_ledger.reads import archive_boundary, chain_heads, iter_chain
    from ledger.audit import chain_problem, check_event_columns
    from ledger.chain import ChainLink, verify_chain

    partitions: dict[tuple[str, int], int] = {}
    last: dict[tuple[str, int], tuple[int, str]] = {}
    current: list[ChainLink] = []
    current_key: tuple[str, int] | None = None
    count = 0

    boundary = await archive_boundary(settings())
    heads = boundary.heads if boundary is not None else {}

    def flush() -> None:
        if current_key is None:
            return
        start = heads.get(current_key)
        problems.extend(
            chain_problem(p).on_topic(current_key[0])
            for p in verify_chain(
                current,
                after_seq=start.ledger_seq if start else 0,
                after_hash=start.chain_hash if start else None,
            )
        )
        current.clear()

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
        problems.extend(p.on_topic(row["kafka_topic"]) for p in check_event_columns(row))
        count += 1
        if count % 5000 == 0:
            advance(count)
    flush()
    advance(count, total=count)
    # a missing tail leaves no gap: compare each chain's end with the committed head
    for (topic, partition), (seq, head) in (await chain_heads(settings())).items():
        if seq == 0:
            continue
        start = heads.get((topic, partition))
        found, found_head = last.get(
            (topic, partition), (start.ledger_seq, start.chain_hash) if start else (0, None)
        )
        if found != seq:
            problems.append(
                AuditProblem(
                    ProblemKind.ROW_MISSING,
                    f"chain ends at seq {found}, processor committed {seq}",
                    partition,
                    seq,
                    column="ledger_seq",
                    expected=seq,
                    found=found,
                    topic=topic,
                )
            )
        elif found_head != head:
            problems.append(
                AuditProblem(
                    ProblemKind.HEAD_MISMATCH,
                    "the chain's last hash is not the head the processor committed",
                    partition,
                    seq,
                    column="chain_hash",
                    expected=head,
                    found=found_head,
                    topic=topic,
                )
            )
    return count, partitions, None if boundary is None else boundary.to_json()


async def _audit_quarantine(problems: list[AuditProblem], advance: Advance) -> int:
    """Every quarantine row, and Kafka coordinates claimed twice across both tables."""
    from claw_ledger.reads import duplicate_coordinates, iter_quarantine
    from ledger.audit import check_quarantine_row

    count = 0
    async for row in iter_quarantine(settings()):
        problems.extend(check_quarantine_row(row))
        count += 1
        if count % 5000 == 0:
            advance(count)
    advance(count, total=count)
    for claimed in await duplicate_coordinates(settings()):
        problems.append(
            AuditProblem(
                ProblemKind.COORDINATES_DUPLICATE,
                f"offset {claimed['kafka_offset']} of {claimed['kafka_topic']} is recorded"
                f" {len(claimed['rows'])} times",
                claimed["kafka_partition"],
                table="events+quarantine",
                row=", ".join(claimed["rows"]),
                column="kafka_offset",
                expected=1,
                found=len(claimed["rows"]),
            )
        )
    return count


async def _audit_control_digests(problems: list[AuditProblem]) -> dict[str, str]:
    """Each control-plane table against the digest kept while writing it (ADR 0014)."""
    from claw_ledger.reads import control_digest_report
    from ledger.audit import check_control_digests

    report = await control_digest_report(settings())
    problems.extend(check_control_digests(report))
    return {
        table: "unsealed" if stored is None else "ok" if stored == computed else "mismatch"
        for table, (stored, computed) in report.items()
    }


def _envelope_row(stored: StoredEvent) -> dict[str, Any]:
    return {
        "envelope_raw": stored.raw,
        "event_id": stored.event_id,
        "kafka_partition": stored.partition,
        "ledger_seq": stored.ledger_seq,
        "position": stored.position,
    }


async def _projections_match_a_rebuild(
    problems: list[AuditProblem], signatures: bool, jobs: int | None, advance: Advance
) -> None:
    """Every projection against a verified rebuild from the events (``claw-ledger replay
    --compare``): a break, or any row that differs, is a problem."""
    from claw_ledger.replaying import rebuild_and_compare
    from ledger.audit import check_event_envelope

    def envelopes(chunk: list[tuple[StoredEvent, Verified | Rejected]]) -> None:
        # every stored envelope, past a break too: each one that fails is named
        for stored, verdict in chunk:
            problems.extend(
                p.on_topic(stored.topic)
                for p in check_event_envelope(_envelope_row(stored), verdict)
            )

    result = await rebuild_and_compare(
        settings(),
        signatures=signatures,
        jobs=jobs,
        on_verdicts=envelopes if signatures else None,
        progress=advance,
    )
    advance(result.events)
    broken = result.fold.broken
    if broken is not None:
        problems.append(
            AuditProblem(
                ProblemKind.REPLAY_BREAK,
                f"replay breaks: {broken.code.value}: {broken.detail}",
                broken.partition,
                broken.ledger_seq,
                row=broken.position,
                expected="an event the rules accept",
                found=broken.code.value,
                topic=broken.topic or None,
            )
        )
        return
    for diff in result.diffs or []:
        problems.append(
            AuditProblem(
                ProblemKind.PROJECTION_MISMATCH,
                f"projection differs: {diff}",
                table=diff.table,
                row=diff.key,
                column=", ".join(diff.columns) or None,
                expected=diff.rebuilt,
                found=diff.live,
            )
        )


async def _audit_transparency_log(problems: list[AuditProblem], advance: Advance) -> dict[str, int]:
    """The log's leaves, nodes and signed checkpoints against a rebuild from the events."""
    from claw_ledger.reads import audit_transparency_log

    rebuild = await audit_transparency_log(settings(), progress=advance)
    advance(rebuild.size, total=rebuild.size)
    problems.extend(rebuild.problems)
    return {"leaves": rebuild.size, "checkpoints": rebuild.checkpoints}


@click.command("quarantine")
@click.option(
    "--reason",
    type=REASON_CODE,
    metavar="CODE",
    help="Only this reason code, e.g. SIGNATURE_INVALID.",
)
@click.option("--after", type=CURSOR, default=0, help="Cursor: start after this quarantine id.")
@limit_option(50)
@json_option()
def quarantine_command(reason: str | None, after: int, limit: int, as_json: bool) -> None:
    """Messages the processor refused, with their reason codes (raw bytes kept)."""
    from claw_ledger.reads import list_quarantine

    page = run_async(list_quarantine(settings(), reason=reason, after=after, limit=limit))
    if as_json:
        rows = []
        for row in page.rows:
            out = dict(row)
            out["received_at"] = format_instant(row["received_at"])
            out |= raw_as_text(bytes(row["raw"]))
            rows.append(out)
        emit_json({"rows": rows, "next_cursor": page.next_cursor})
        return
    if not page.rows:
        echo("nothing quarantined matches" + (" after this cursor" if after else ""))
        return
    print_table(
        "claw-ledger quarantine",
        ("id", "received_at", "reason", "event_id", "detail"),
        (
            (
                str(row["id"]),
                row["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
                row["reason_code"],
                row["event_id"] or "-",
                row["detail"][:120],
            )
            for row in page.rows
        ),
        # a reason code reads as a whole; the detail says the most
        widths={"id": 0, "received_at": 2, "reason": 0, "event_id": 3, "detail": 6},
        min_widths={"received_at": 11},
    )


command = audit_command
