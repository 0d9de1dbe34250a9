"""The rules of ``bundle.sealed`` and ``pulse.published`` (ledger/types/bundles.py)."""

from __future__ import annotations

from ledger.errors import ReasonCode
from ledger.pulse import pulse_id
from ledger.types import REGISTRY

from ._support import Ledger, created_columns, pulse_body, sealed_body


def test_the_ledger_key_seals_a_known_job(ledger: Ledger) -> None:
    ledger.started_job()
    accepted = ledger.ok(ledger.keys.ledger, "bundle.sealed", "job:job-1", sealed_body("job-1"))
    (row,) = accepted.rows
    assert row.table == "bundles" and row.key_column == "bundle_hash_b64u"
    assert row.values["sealed_by"] == ledger.keys.ledger.did
    assert row.values["job_id"] == "job-1" and row.values["checkpoint_size"] == 5


def test_only_the_ledger_role_seals(ledger: Ledger) -> None:
    ledger.started_job()
    refused = ledger.refused(
        ledger.keys.runtime, "bundle.sealed", "job:job-1", sealed_body("job-1")
    )
    assert refused.code == ReasonCode.ROLE_NOT_ALLOWED
    assert REGISTRY.roles_allowed_for("pulse.published") == REGISTRY.roles_allowed_for(
        "bundle.sealed"
    )


def test_a_seal_names_a_known_job_on_its_stream(ledger: Ledger) -> None:
    key = ledger.keys.ledger
    unknown = ledger.refused(key, "bundle.sealed", "job:nope", sealed_body("nope"))
    assert unknown.code == ReasonCode.JOB_UNKNOWN
    ledger.started_job()
    stream = ledger.refused(key, "bundle.sealed", "job:other", sealed_body("job-1"))
    assert stream.code == ReasonCode.SCHEMA_VALIDATION_FAILED
    bad_hash = ledger.refused(
        key, "bundle.sealed", "job:job-1", sealed_body("job-1", bundle_hash_b64u="short")
    )
    assert bad_hash.code == ReasonCode.SCHEMA_VALIDATION_FAILED


def test_a_pulse_id_is_the_hash_of_its_record(ledger: Ledger) -> None:
    ledger.started_job()
    key = ledger.keys.ledger
    body = pulse_body("job-1")
    accepted = ledger.ok(key, "pulse.published", "job:job-1", body)
    (row,) = accepted.rows
    assert row.table == "pulse_records" and row.values["pulse_id"] == pulse_id(body["record"])
    forged = dict(body, record=dict(body["record"], verdict="invalid"))
    refused = ledger.refused(key, "pulse.published", "job:job-1", forged)
    assert refused.code == ReasonCode.PULSE_ID_MISMATCH
    shapeless = dict(body, record=dict(body["record"], extra=1))
    assert ledger.refused(key, "pulse.published", "job:job-1", shapeless).code == (
        ReasonCode.SCHEMA_VALIDATION_FAILED
    )
    unknown = pulse_body("job-9")
    assert ledger.refused(key, "pulse.published", "job:job-9", unknown).code == (
        ReasonCode.JOB_UNKNOWN
    )


def test_rows_match_the_migration_columns(ledger: Ledger) -> None:
    ledger.started_job()
    ledger.ok(ledger.keys.ledger, "bundle.sealed", "job:job-1", sealed_body("job-1"))
    ledger.ok(ledger.keys.ledger, "pulse.published", "job:job-1", pulse_body("job-1"))
    tables = set()
    for row in ledger.rows:
        if row.table not in ("bundles", "pulse_records"):
            continue
        tables.add(row.table)
        columns = created_columns("0012_bundles_and_pulse.sql", row.table)
        assert set(row.values) == columns, row.table
    assert tables == {"bundles", "pulse_records"}
