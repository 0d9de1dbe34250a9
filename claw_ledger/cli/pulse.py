"""``claw-ledger pulse``: Trust Pulse records of sealed bundles, for reviewers."""

from __future__ import annotations

import click

from claw_ledger.cli.common import (
    IdentifierArgsCommand,
    echo,
    emit_json,
    json_option,
    key_option,
    resolve_key,
    run_async,
    settings,
)

__all__ = ["command"]


@click.group("pulse")
def command() -> None:
    """Trust Pulse: stable, content-addressed records of sealed bundles.

    A record names the run, its policy hash, the bundle's counts, the offline
    verifier's verdict and the checkpoint the bundle is proven against. Its id
    is the SHA-256 of the record (JCS), so the same bundle always gives the
    same id.

    \b
    Examples:
      claw-ledger pulse publish job-42 --key ledger
      claw-ledger pulse show 6xQ...Zk --json
    """


@command.command("publish")
@click.argument("job_id", metavar="RUN")
@key_option("The ledger's key (role ledger): verifies the bundle and signs pulse.published.")
@click.option("--bundle", "bundle_hash", metavar="HASH", help="A given sealed bundle of RUN.")
@json_option("Print JSON.")
def publish(job_id: str, key_ref: str, bundle_hash: str | None, as_json: bool) -> None:
    """Verify RUN's newest sealed bundle and record its Trust Pulse record (pulse.published).

    Publishing the same record again records nothing new. Exit 1 when the
    ledger refuses the record.
    """
    from claw_ledger.bundling import publish_pulse

    identity, record, outcome = run_async(
        publish_pulse(settings(), resolve_key(key_ref), job_id, bundle_hash)
    )
    if as_json:
        emit_json({"pulse_id": identity, "record": record, "ledger": outcome.to_dict()})
    outcome.check("pulse.published")
    if not as_json:
        echo(
            f"pulse {identity}: job {job_id}, bundle {record['bundle_hash_b64u']},"
            f" verdict {record['verdict']} ({record['reason_code']})"
            f" (ledger position {outcome.position})"
        )


# a pulse id is base64url and may begin with "-": such a word is the ID argument
@command.command("show", cls=IdentifierArgsCommand)
@click.argument("pulse_id", metavar="ID")
@json_option("Print JSON.")
def show(pulse_id: str, as_json: bool) -> None:
    """Show a Trust Pulse record by its id (exit 1 when there is none)."""
    from claw_ledger.reads import query_sync
    from ledger.errors import BundleError, ReasonCode
    from ledger.pulse import pulse_id as record_id
    from storage.bundle_queries import get_pulse

    row = query_sync(settings(), get_pulse, pulse_id)
    if row is None:
        raise BundleError(
            ReasonCode.SCHEMA_VALIDATION_FAILED,
            f"no Trust Pulse record {pulse_id}",
            hint="list a run's records with `claw-ledger timeline --stream job:RUN`",
        )
    record = row["record"]
    if record_id(record) != pulse_id:
        raise BundleError(
            ReasonCode.PULSE_ID_MISMATCH, f"the stored record does not hash to {pulse_id}"
        )
    if as_json:
        emit_json(
            {"pulse_id": pulse_id, "record": record}
            | {k: row[k] for k in ("published_by", "published_at", "published_event_id")}
        )
        return
    counts = record["counts"]
    checkpoint = record["checkpoint"]
    echo(f"pulse:      {pulse_id}")
    echo(f"run:        {record['job_id']}  ({record['run_status']})")
    echo(f"bundle:     {record['bundle_hash_b64u']}  ({record['bundle_id']})")
    echo(f"policy:     {record['policy_hash_b64u'] or '-'}")
    echo(f"verdict:    {record['verdict']}  ({record['reason_code']})")
    echo(
        f"counts:     {counts.get('events', 0)} events, {counts.get('receipts', 0)} receipts,"
        f" {counts.get('decisions_allowed', 0)} allowed, {counts.get('decisions_denied', 0)}"
        f" denied, {counts.get('halts', 0)} halts, {counts.get('outputs', 0)} outputs"
    )
    echo(
        f"checkpoint: {checkpoint['origin']}  size {checkpoint['size']}"
        f"  root {checkpoint['root_hash_b64']}"
    )
    echo(f"published:  {row['published_at']} by {row['published_by']}")
