"""``claw-ledger checkpoint`` and ``claw-ledger prove``: the transparency log's checkpoints,
inclusion and consistency proofs, and a monitor (docs/transparency.md)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from claw_ledger.cli.common import (
    CURSOR,
    echo,
    emit_json,
    json_option,
    limit_option,
    run_async,
    settings,
)

__all__ = ["command", "prove"]

T = TypeVar("T")


async def _with_reader(query: Callable[[Any], Awaitable[T]]) -> T:
    """``query(conn)`` on a connection of the reader role (SELECT only)."""
    from claw_ledger.config import effective_database_url
    from storage import connect

    conn = await connect(effective_database_url(settings(), role="reader"))
    try:
        return await query(conn)
    finally:
        await conn.close()


def _print_checkpoint(document: dict[str, Any]) -> None:
    echo(f"origin     {document['origin']}")
    echo(f"tree size  {document['tree_size']}")
    echo(f"root hash  {document['root_hash_b64']}")
    echo(f"signed by  {document['signer_did']}")
    echo(f"event      {document['event_id']} (checkpoint.signed)")
    echo(f"signed at  {document['occurred_at']}")
    echo("")
    echo(document["note"], nl=False)


def _show(checkpoint: Any, as_json: bool, note_only: bool) -> None:
    if note_only:
        echo(checkpoint.note, nl=False)
    elif as_json:
        emit_json(checkpoint.to_dict())
    else:
        _print_checkpoint(checkpoint.to_dict())


@click.group("checkpoint")
def command() -> None:
    """The transparency log's signed checkpoints (C2SP tlog-checkpoint notes).

    \b
    Examples:
      claw-ledger checkpoint latest
      claw-ledger checkpoint latest --note > checkpoint.txt   # verify it offline
      claw-ledger checkpoint show 1200 --json
      claw-ledger checkpoint watch --state monitor.json --ledger-key did:key:z6Mk…
    """


_NONE_YET = (
    "no checkpoint yet: start the checkpointer (`claw-ledger checkpointer start --key LEDGER_KEY`)"
)


@command.command("latest")
@json_option()
@click.option("--note", "note_only", is_flag=True, help="Print only the signed note.")
def latest(as_json: bool, note_only: bool) -> None:
    """The newest checkpoint. Exit 1 when the ledger has signed none yet."""
    from storage.tlog_store import latest_checkpoint

    checkpoint = run_async(_with_reader(latest_checkpoint))
    if checkpoint is None:
        if as_json:
            emit_json(None)
        echo(_NONE_YET, err=True)
        sys.exit(1)
    _show(checkpoint, as_json, note_only)


@command.command("show")
@click.argument("size", type=click.IntRange(min=1))
@json_option()
@click.option("--note", "note_only", is_flag=True, help="Print only the signed note.")
def show(size: int, as_json: bool, note_only: bool) -> None:
    """The checkpoint of tree size SIZE. Exit 1 when none was signed at that size."""
    from storage.tlog_store import checkpoint_at

    checkpoint = run_async(_with_reader(lambda conn: checkpoint_at(conn, size)))
    if checkpoint is None:
        echo(f"error: no checkpoint of tree size {size}", err=True)
        sys.exit(1)
    _show(checkpoint, as_json, note_only)


@command.command("list")
@click.option("--after", type=CURSOR, default=0, help="Sizes above this.")
@limit_option(20)
@json_option()
def list_command(after: int, limit: int, as_json: bool) -> None:
    """Signed checkpoints by tree size, oldest first."""
    from storage.tlog_store import checkpoints_after

    rows = run_async(_with_reader(lambda conn: checkpoints_after(conn, after, limit)))
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    if not rows:
        echo(f"no checkpoint above tree size {after}" if after else _NONE_YET)
        return
    echo(f"{'TREE SIZE':>12}  {'ROOT HASH':<44}  SIGNED AT")
    for row in rows:
        document = row.to_dict()
        echo(f"{row.tree_size:>12}  {document['root_hash_b64']}  {row.occurred_at}")


@command.command("watch")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where the last verified checkpoint is kept [default: <state_dir>/monitor.json].",
)
@click.option(
    "--ledger-key",
    metavar="KEY",
    help="Pin the ledger key: its did:key, or its note verifier key (origin+id+key)."
    " Default: the key in the state file, else the registered key that signed the first"
    " checkpoint (trust on first use).",
)
@click.option("--origin", metavar="ORIGIN", help="Pin the log's origin (default: as pinned).")
@click.option("--once", is_flag=True, help="Check what is new, then exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    help="Seconds between checks (5 by default).",
)
@json_option("One JSON line per check or alert.")
def watch(
    state_path: Path | None,
    ledger_key: str | None,
    origin: str | None,
    once: bool,
    interval: float,
    as_json: bool,
) -> None:
    """Monitor the log: each new checkpoint must be signed by the pinned key and
    extend the last one seen (a consistency proof against the remembered root).

    \b
    Exit codes: 0 stopped (or --once, all verified); 1 ALERT: a checkpoint is
    wrongly signed or inconsistent with the last one seen (both sizes and
    roots are printed, the state file is left as it was); 2 usage or setup.
    """
    from claw_ledger.tlog_monitor import LogAlert

    path = state_path or settings().state_dir / "monitor.json"
    state = None
    try:
        while True:
            if state is None:
                state = run_async(_monitor_state(path, ledger_key, origin))
                if state is None and once:
                    echo("no checkpoint yet: nothing to verify", err=True)
            if state is not None:
                result = run_async(_check(state, path))
                state = result.state
                _say(
                    as_json,
                    {
                        "verified": result.verified,
                        "tree_size": state.tree_size,
                        "root_hash_b64": state.root_hash_b64,
                    },
                    f"verified {len(result.verified)} new checkpoint(s): log size"
                    f" {state.tree_size}, root {state.root_hash_b64}"
                    if result.verified or once
                    else "",
                )
            if once:
                return
            time.sleep(interval)
    except LogAlert as alert:
        if as_json:
            echo(json.dumps(alert.report()))
        echo(_alert_text(alert, path), err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        return


def _say(as_json: bool, document: dict[str, Any], text: str) -> None:
    if as_json:
        echo(json.dumps(document))
    elif text:
        echo(text)


def _alert_text(alert: Any, path: Path) -> str:
    from storage.tlog_store import b64

    return (
        "\n*** ALERT: the transparency log is NOT consistent with what this monitor saw ***\n"
        f"  {alert.code.value}: {alert.detail}\n"
        f"  last seen:  size {alert.seen.tree_size}, root {alert.seen.root_hash_b64} ({path})\n"
        f"  offending:  size {alert.offending.tree_size},"
        f" root {b64(alert.offending.root_hash)} (event {alert.offending.event_id})\n"
        "  The log was rewritten or the checkpoint forged: keep both checkpoints as evidence.\n"
    )


async def _monitor_state(path: Path, ledger_key: str | None, origin: str | None) -> Any:
    """The state file's pins, or new ones (from the flags, else the first checkpoint)."""
    from claw_ledger.tlog_monitor import MonitorState, pin_from
    from ledger.errors import ConfigError
    from storage.tlog_store import checkpoints_after

    state = MonitorState.load(path)
    if state is not None:
        if ledger_key and pin_from(ledger_key, origin or state.origin).verifier_key() != (
            state.verifier_key
        ):
            raise ConfigError(
                f"{path} pins another ledger key ({state.verifier_key})",
                hint="use another --state file to monitor with another key",
            )
        return state
    first = await _with_reader(lambda conn: checkpoints_after(conn, 0, 1))
    if not first and not (ledger_key and origin):
        return None
    pinned_origin = origin or first[0].origin
    if ledger_key:
        verifier = pin_from(ledger_key, pinned_origin)
    else:
        verifier = pin_from(first[0].signer_did, pinned_origin)
        await _require_registered_ledger_key(first[0].signer_did)
        echo(
            f"pinned the ledger key {first[0].signer_did} as {verifier.verifier_key()}"
            " (trust on first use; pass --ledger-key to pin it yourself)",
            err=True,
        )
    state = MonitorState(pinned_origin, verifier.verifier_key())
    state.save(path)
    return state


async def _require_registered_ledger_key(did: str) -> None:
    from ledger.errors import ConfigError

    async def roles(conn: Any) -> Any:
        return await conn.fetchrow(
            "SELECT roles::text AS roles, revoked FROM keys WHERE did = $1", did
        )

    row = await _with_reader(roles)
    if row is None or row["revoked"] or "ledger" not in json.loads(row["roles"]):
        raise ConfigError(
            f"the first checkpoint is signed by {did}, not a registered ledger key",
            hint="pin the ledger key yourself with --ledger-key",
        )


async def _check(state: Any, path: Path) -> Any:
    from claw_ledger.tlog_monitor import check_new_checkpoints

    return await _with_reader(
        lambda conn: check_new_checkpoints(conn, state, on_verified=lambda new: new.save(path))
    )


# ---------------------------------------------------------------- prove


@click.group("prove")
def prove() -> None:
    """Inclusion and consistency proofs as proof files (docs/transparency.md §8),
    which `claw-ledger verify FILE --ledger-key KEY` checks offline.

    \b
    Examples:
      claw-ledger prove inclusion 6f1c…-…  -o proof.json
      claw-ledger prove inclusion 6f1c…-…  --checkpoint 1200 --json
      claw-ledger prove consistency 1000 1200 -o consistency.json
    """


def _emit_proof(proof_file: dict[str, Any], output: Path | None, summary: str) -> None:
    text = json.dumps(proof_file, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    echo(f"{summary}; proof file {output}")


_output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the proof file here.",
)


def _not_in_the_log(exc: Exception) -> NoReturn:
    """What is asked for is not there: exit 1, as `checkpoint show` and `run show`."""
    echo(f"error: {exc}", err=True)
    sys.exit(1)


@prove.command("inclusion")
@click.argument("event_id", type=click.UUID)
@click.option("--checkpoint", "tree_size", type=click.IntRange(min=1), help="Tree size.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Seconds to wait for the event to be in a checkpoint.",
)
@_output_option
@json_option("The proof with its leaf and checkpoint.")
def inclusion(
    event_id: uuid.UUID, tree_size: int | None, wait: float, output: Path | None, as_json: bool
) -> None:
    """Prove that EVENT_ID is in the log: its leaf, the audit path and the signed
    checkpoint (the latest, or the one of --checkpoint SIZE). Exit 1 when the
    event, or a checkpoint holding it, is not there (after --wait)."""
    from storage.tlog_store import LogEntryNotFound, b64, inclusion_proof_for_event

    deadline = time.monotonic() + wait
    while True:
        try:
            proof = run_async(
                _with_reader(lambda conn: inclusion_proof_for_event(conn, str(event_id), tree_size))
            )
            break
        except LogEntryNotFound as exc:
            if time.monotonic() >= deadline:
                _not_in_the_log(exc)
            time.sleep(0.25)
    if as_json:
        from ledger.merkle import leaf_hash

        emit_json(
            {
                "event_id": proof.event_id,
                "log_index": proof.log_index,
                "tree_size": proof.checkpoint.tree_size,
                "root_hash_b64": b64(proof.checkpoint.root_hash),
                "leaf_data_b64": b64(proof.leaf_data),
                "leaf_hash_b64": b64(leaf_hash(proof.leaf_data)),
                "proof_b64": [b64(h) for h in proof.proof],
                "checkpoint": proof.checkpoint.to_dict(),
                "proof_file": proof.proof_file(),
            }
        )
        return
    _emit_proof(
        proof.proof_file(),
        output,
        f"event {proof.event_id} is leaf {proof.log_index} of the tree of size"
        f" {proof.checkpoint.tree_size}",
    )


@prove.command("consistency")
@click.argument("old", type=click.IntRange(min=1))
@click.argument("new", type=click.IntRange(min=1))
@_output_option
@json_option("The proof with both checkpoints.")
def consistency(old: int, new: int, output: Path | None, as_json: bool) -> None:
    """Prove that the checkpoint of tree size NEW extends the one of size OLD.
    Exit 1 when either checkpoint was never signed."""
    from storage.tlog_store import LogEntryNotFound, b64, consistency_proof_between

    if old > new:
        raise click.UsageError(f"OLD ({old}) is larger than NEW ({new}): a tree only grows")
    try:
        proof = run_async(_with_reader(lambda conn: consistency_proof_between(conn, old, new)))
    except LogEntryNotFound as exc:
        _not_in_the_log(exc)
    if as_json:
        emit_json(
            {
                "old": proof.old.to_dict(),
                "new": proof.new.to_dict(),
                "proof_b64": [b64(h) for h in proof.proof],
                "proof_file": proof.proof_file(),
            }
        )
        return
    _emit_proof(proof.proof_file(), output, f"the tree of size {new} extends the one of size {old}")
