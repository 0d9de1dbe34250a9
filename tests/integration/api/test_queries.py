"""The query routes answer what the ledger holds, read as the reader role."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

import httpx
import pytest

from ledger.instants import format_instant
from tests.fixtures_api import ApiLedger
from tests.fixtures_ledger import run_cli

pytestmark = pytest.mark.integration

JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


async def _fetch(api: ApiLedger, sql: str, *args: Any) -> list[Any]:
    conn = await api.owner()
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def _pages(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor is not None else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        rows.extend(page["rows"])
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
        assert len(page["rows"]) == params["limit"]


async def _pages_match_the_database(
    api: ApiLedger, client: httpx.Client, path: str, sql: str, *, limit: int
) -> list[dict[str, Any]]:
    """Every row of ``path``, ``limit`` a page, after checking that on the columns ``sql``
    selects they are the rows it finds, in its order."""
    expected = await _fetch(api, sql)
    rows = _pages(client, path, limit=limit)
    columns = list(expected[0].keys()) if expected else []
    assert [tuple(r[c] for c in columns) for r in rows] == [tuple(e) for e in expected]
    return rows


async def test_the_timeline_pages_through_every_event_in_order(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    events = "SELECT position, event_id::text FROM events ORDER BY 1"
    rows = await _pages_match_the_database(api_ledger, reader, "/v1/timeline", events, limit=7)
    assert all(r["summary"] and isinstance(r["body"], dict) for r in rows)


async def test_timeline_filters_match_the_database(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    stream = f"job:{api_ledger.demo.job}"
    by_stream = await _fetch(api_ledger, "SELECT position FROM events WHERE stream = $1", stream)
    rows = _pages(reader, "/v1/timeline", stream=stream, limit=3)
    assert [r["position"] for r in rows] == sorted(r["position"] for r in by_stream)
    assert len(rows) >= 4  # approved, started, receipts, completed
    halted = _pages(reader, "/v1/timeline", type="agent.halted", limit=50)
    assert halted and {r["event_type"] for r in halted} == {"agent.halted"}
    first = rows[0]
    signer = _pages(reader, "/v1/timeline", signer=first["producer"], stream=stream, limit=50)
    assert signer and {r["producer"] for r in signer} == {first["producer"]}
    moment = rows[2]["occurred_at"]
    since = _pages(reader, "/v1/timeline", stream=stream, since=moment, limit=50)
    until = _pages(reader, "/v1/timeline", stream=stream, until=moment, limit=50)
    assert len(since) + len(until) == len(rows)
    # as text: every recorded time has the same width, so text order is time order
    assert all(r["occurred_at"] >= moment for r in since)
    assert all(r["occurred_at"] < moment for r in until)


def test_an_event_is_its_exact_envelope_rechecked(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    response = reader.get(f"/v1/events/{api_ledger.demo.committed_event}")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["status"] == "committed"
    assert document["event_type"] == "run.started"
    assert document["verification"] == {
        "envelope": "OK",
        "envelope_sha256_matches": True,
        "chain_hash_matches": True,
    }
    assert document["inclusion_proof"] is None


async def test_the_envelope_is_byte_for_byte_the_stored_one(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    (row,) = await _fetch(
        api_ledger,
        "SELECT envelope_raw FROM events WHERE event_id = $1::uuid",
        api_ledger.demo.committed_event,
    )
    document = reader.get(f"/v1/events/{api_ledger.demo.committed_event}").json()
    assert document["envelope"].encode("utf-8") == bytes(row["envelope_raw"])


def test_a_refused_event_answers_quarantined_with_its_code(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    document = reader.get(f"/v1/events/{api_ledger.demo.quarantined_event}").json()
    assert document["status"] == "quarantined"
    assert document["reason_code"] == "AGENT_HALTED"
    assert "envelope" not in document or document["envelope"] is None


def test_an_unknown_event_is_404(reader: httpx.Client) -> None:
    response = reader.get("/v1/events/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["reason_code"] == "API_NOT_FOUND"


async def test_quarantine_pages_match_the_database(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    refused = "SELECT id, reason_code FROM quarantine ORDER BY id"
    await _pages_match_the_database(api_ledger, reader, "/v1/quarantine", refused, limit=1)
    halted = _pages(reader, "/v1/quarantine", reason="AGENT_HALTED", limit=10)
    assert halted and {r["reason_code"] for r in halted} == {"AGENT_HALTED"}


async def test_a_quarantine_row_names_its_topic_and_gives_back_its_exact_bytes(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    """Partition and offset name a message only with its topic (each lane has its
    own), and the refused bytes come back exactly: as text, or base64 when they
    are not UTF-8."""
    stored = {
        r["id"]: r for r in await _fetch(api_ledger, "SELECT id, kafka_topic, raw FROM quarantine")
    }
    rows = _pages(reader, "/v1/quarantine", limit=50)
    assert rows and {r["id"] for r in rows} == set(stored)
    for row in rows:
        db = stored[row["id"]]
        assert row["kafka_topic"] == db["kafka_topic"]
        raw = bytes(db["raw"])
        if row["raw_encoding"] == "utf-8":
            assert row["raw"].encode("utf-8") == raw
        else:
            assert row["raw_encoding"] == "base64" and base64.b64decode(row["raw"]) == raw
    refused = reader.get(f"/v1/events/{api_ledger.demo.quarantined_event}").json()
    assert refused["kafka_topic"] in {db["kafka_topic"] for db in stored.values()}
    assert refused["raw_encoding"] == "utf-8"


@pytest.mark.parametrize(
    ("path", "name", "typo", "suggested"),
    [
        ("/v1/timeline", "type", "agent.halt", "agent.halted"),
        ("/v1/quarantine", "reason", "AGENT_HALT", "AGENT_HALTED"),
    ],
)
def test_an_unknown_type_or_reason_is_refused_naming_the_close_ones(
    reader: httpx.Client, path: str, name: str, typo: str, suggested: str
) -> None:
    """A value the ledger cannot hold would answer an empty page: "nothing happened"."""
    response = reader.get(path, params={name: typo})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["reason_code"] == "API_BAD_PARAMETER"
    assert error["message"].startswith(f"{name}: '{typo}' is not a known")
    assert f"did you mean {suggested}" in error["message"]
    # a known name in another case is that name
    exact = _pages(reader, path, **{name: suggested, "limit": 50})
    folded = _pages(reader, path, **{name: suggested.swapcase(), "limit": 50})
    assert exact and folded == exact


#: a recorded time as every document spells it (ledger.instants)
RECORDED_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


async def test_recorded_times_read_the_same_in_every_document(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    """One spelling (UTC, six fraction digits, ``Z``) in the timeline, the event
    document, the quarantine and the CLI's JSON: the same instant is the same text,
    and text order is time order."""
    committed, refused = api_ledger.demo.committed_event, api_ledger.demo.quarantined_event
    (stored,) = await _fetch(
        api_ledger,
        "SELECT occurred_at, recorded_at FROM events WHERE event_id = $1::uuid",
        committed,
    )
    (quarantined,) = await _fetch(
        api_ledger, "SELECT received_at FROM quarantine WHERE event_id = $1", refused
    )
    expected = {name: format_instant(stored[name]) for name in ("occurred_at", "recorded_at")}
    timeline = _pages(reader, "/v1/timeline", limit=50)
    (in_timeline,) = [r for r in timeline if r["event_id"] == committed]
    document = reader.get(f"/v1/events/{committed}").json()
    cli = run_cli(api_ledger.harness.env, "timeline", "--json", "--limit", "1000")
    assert cli.returncode == 0, cli.stderr
    (in_cli,) = [r for r in json.loads(cli.stdout)["rows"] if r["event_id"] == committed]
    for seen in (in_timeline, document, in_cli):
        assert {name: seen[name] for name in expected} == expected
    received = format_instant(quarantined["received_at"])
    assert reader.get(f"/v1/events/{refused}").json()["received_at"] == received
    assert received in {r["received_at"] for r in _pages(reader, "/v1/quarantine", limit=50)}
    everywhere = [r[name] for r in timeline for name in expected] + [received]
    assert all(RECORDED_TIME.fullmatch(text) for text in everywhere), everywhere
    by_time = sorted(
        timeline, key=lambda r: (datetime.fromisoformat(r["recorded_at"]), r["position"])
    )
    assert by_time == sorted(timeline, key=lambda r: (r["recorded_at"], r["position"]))


def test_a_run_holds_its_chain_and_receipts(api_ledger: ApiLedger, reader: httpx.Client) -> None:
    document = reader.get(f"/v1/runs/{api_ledger.demo.job}").json()
    assert document["job_id"] == api_ledger.demo.job
    assert document["status"] == "completed"
    assert len(document["receipts"]) == document["receipt_count"] >= 1
    assert [e["event_type"] for e in document["event_chain"]][:2] == [
        "run.manifest_approved",
        "run.started",
    ]
    missing = reader.get("/v1/runs/no-such-job")
    assert missing.status_code == 404
    assert missing.json()["error"]["reason_code"] == "JOB_UNKNOWN"


def test_a_token_answers_its_status_and_never_the_token(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    document = reader.get(f"/v1/tokens/{api_ledger.demo.jti}").json()
    assert document["jti"] == api_ledger.demo.jti
    # the demo's halt of the job revoked its token (a full stop, ADR 0016)
    assert document["status"] == "revoked"
    assert isinstance(document["expired"], bool)
    assert "token" not in document
    assert not [v for v in document.values() if isinstance(v, str) and JWT.match(v)]
    missing = reader.get("/v1/tokens/nope")
    assert (missing.status_code, missing.json()["error"]["reason_code"]) == (404, "TOKEN_UNKNOWN")


def test_a_policy_answers_its_signed_envelope(api_ledger: ApiLedger, reader: httpx.Client) -> None:
    document = reader.get(f"/v1/policies/{api_ledger.demo.policy_hash}").json()
    assert document["policy_hash_b64u"] == api_ledger.demo.policy_hash
    assert document["status"] == "active"
    assert '"envelope_type":"wpc"' in document["wpc_envelope_raw"].replace(" ", "")
    malformed = reader.get("/v1/policies/not-a-hash")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["reason_code"] == "MALFORMED_POLICY_HASH"
    unknown = reader.get("/v1/policies/" + "A" * 43)
    assert (unknown.status_code, unknown.json()["error"]["reason_code"]) == (404, "WPC_UNKNOWN")


def test_halts_are_the_active_ones(api_ledger: ApiLedger, reader: httpx.Client) -> None:
    halts = reader.get("/v1/halts").json()["halts"]
    assert f"job:{api_ledger.demo.job}" in {h["target"] for h in halts}
    assert all(h["active"] for h in halts)


def test_the_openapi_document_describes_every_route(api_ledger: ApiLedger) -> None:
    with httpx.Client(base_url=api_ledger.url) as client:
        document = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "claw-ledger"
    paths = document["paths"]
    for path in ("/v1/timeline", "/v1/events/{event_id}", "/v1/authorize", "/metrics"):
        assert path in paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            scope = operation["x-claw-scope"]
            if scope == "public":
                continue
            assert {"401", "403"} <= set(operation["responses"]), (path, method)
            assert operation["security"] == [{"HTTPBearer": []}], (path, method)
    timeline = {p["name"] for p in paths["/v1/timeline"]["get"]["parameters"]}
    assert timeline == {"stream", "type", "signer", "since", "until", "cursor", "limit"}


async def test_a_time_window_pages_in_occurred_at_order(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    (first,) = await _fetch(api_ledger, "SELECT min(occurred_at) AS t FROM events")
    since = first["t"].isoformat()
    expected = await _fetch(
        api_ledger,
        "SELECT position FROM events WHERE occurred_at >= $1 ORDER BY occurred_at, position",
        first["t"],
    )
    rows = _pages(reader, "/v1/timeline", since=since, limit=4)
    assert [r["position"] for r in rows] == [e["position"] for e in expected]
    page = reader.get("/v1/timeline", params={"since": since, "limit": 4}).json()
    assert page["next_cursor"].startswith("t")
    # a cursor belongs to its kind of query
    mixed = reader.get("/v1/timeline", params={"cursor": page["next_cursor"], "limit": 4})
    assert mixed.status_code == 400
    assert "cursor" in mixed.json()["error"]["message"]
    plain = reader.get("/v1/timeline", params={"limit": 4}).json()["next_cursor"]
    mixed = reader.get("/v1/timeline", params={"cursor": plain, "since": since})
    assert mixed.status_code == 400


async def test_released_connections_skip_the_reset_round_trip(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    """The service's pool does not send RESET ALL & co. on every release (two round
    trips a request); a released session is idle, outside any transaction."""
    for _ in range(3):
        response = reader.get("/v1/timeline", params={"limit": 2})
        assert response.status_code == 200, response.text
    rows = await _fetch(
        api_ledger,
        "SELECT state, query"
        " FROM pg_stat_activity WHERE application_name = 'claw-ledger-api'"
        " AND datname = current_database()",
    )
    assert rows
    assert {r["state"] for r in rows} == {"idle"}
    assert not [r["query"] for r in rows if "RESET ALL" in r["query"]]
