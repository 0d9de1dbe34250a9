"""Hostile input: injection attempts in every filter and path parameter, malformed
parameters, oversized pages and bodies. None may reach past a bound parameter,
none may end in a 500, and the ledger must be unchanged afterwards."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.fixtures_api import ApiLedger

pytestmark = pytest.mark.integration

INJECTIONS = [
    "' OR '1'='1",
    "job:x' OR 1=1 --",
    "x'; DROP TABLE events; --",
    "x'); DELETE FROM quarantine; --",
    "$1",
    "%",
    "_",
    "\\",
    '" OR ""="',
    "1 UNION SELECT key_sha256 FROM api_keys --",
    "\u202e\u0000nul",
    "a" * 513,
    "ʼ OR ʼ1ʼ=ʼ1",
]
TEXT_FILTERS = {
    "/v1/timeline": ["stream", "type", "signer"],
    "/v1/quarantine": ["reason"],
}
TYPED = {
    "/v1/timeline": ["since", "until", "cursor", "limit"],
    "/v1/quarantine": ["cursor", "limit"],
}
PATHS = [
    "/v1/events/{}",
    "/v1/runs/{}",
    "/v1/tokens/{}",
    "/v1/policies/{}",
]


async def _counts(api: ApiLedger) -> tuple[int, int, int]:
    conn = await api.owner()
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM events"),
            await conn.fetchval("SELECT count(*) FROM quarantine"),
            await conn.fetchval("SELECT count(*) FROM api_keys"),
        )
    finally:
        await conn.close()


def _refusal_or_nothing(response: httpx.Response, what: Any) -> None:
    assert response.status_code in (200, 400, 404), (what, response.status_code, response.text)
    if response.status_code == 200:
        body = response.json()
        assert body.get("rows", []) == [], (what, body)
    else:
        assert response.json()["error"]["reason_code"], what


async def test_injection_in_every_filter_matches_nothing_and_changes_nothing(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    before = await _counts(api_ledger)
    tried = 0
    for filters in (TEXT_FILTERS, TYPED):
        for path, names in filters.items():
            for name in names:
                for value in INJECTIONS:
                    response = reader.get(path, params={name: value})
                    _refusal_or_nothing(response, (path, name, value))
                    tried += 1
    for template in PATHS:
        for value in INJECTIONS:
            _refusal_or_nothing(reader.get(template.format(quote(value, safe=""))), value)
            tried += 1
    assert tried == len(INJECTIONS) * (4 + 6 + len(PATHS))
    assert await _counts(api_ledger) == before
    # the ledger still answers normally
    assert len(reader.get("/v1/timeline", params={"limit": 5}).json()["rows"]) == 5


def test_a_nul_in_a_filter_is_a_bad_parameter_not_a_database_error(reader: httpx.Client) -> None:
    for path, names in TEXT_FILTERS.items():
        for name in names:
            response = reader.get(path, params={name: "a\u0000b"})
            assert response.status_code == 400, (path, name, response.text)
            assert response.json()["error"]["reason_code"] == "API_BAD_PARAMETER"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": "ten"},
        {"limit": 101},  # over the service's max_page of this fixture
        {"limit": 10**30},
        {"cursor": -5},
        {"cursor": "abc"},
        {"cursor": 2**63},
        {"since": "yesterday"},
        {"since": "2026-11-26T10:00:00"},  # no zone
        {"until": "2026-13-45T00:00:00Z"},
        # valid RFC 3339, but outside the years 1 to 9999 once in UTC
        {"since": "9999-12-31T23:59:59-01:00"},
        {"until": "0001-01-01T00:00:00+01:00"},
    ],
)
def test_malformed_or_oversized_page_parameters_are_400(
    reader: httpx.Client, params: dict[str, Any]
) -> None:
    response = reader.get("/v1/timeline", params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["reason_code"] == "API_BAD_PARAMETER"
    assert next(iter(params)) in error["message"]


def test_the_largest_page_is_served(reader: httpx.Client) -> None:
    assert reader.get("/v1/timeline", params={"limit": 100}).status_code == 200


def test_a_malformed_event_id_is_400(reader: httpx.Client) -> None:
    response = reader.get("/v1/events/not-a-uuid")
    assert response.status_code == 400
    assert response.json()["error"]["reason_code"] == "API_BAD_PARAMETER"


def test_an_oversized_body_is_413_before_it_is_read(api_ledger: ApiLedger) -> None:
    with api_ledger.client("runtime") as client:
        response = client.post("/v1/authorize", content=b"{" + b" " * 5000 + b"}")
        assert response.status_code == 413
        assert response.json()["error"]["reason_code"] == "API_BODY_TOO_LARGE"
        fits = client.post("/v1/authorize", content=b"{}")
        assert fits.status_code == 503  # within the limit: no authorizer on this build
        assert fits.json()["error"]["reason_code"] == "API_NOT_ENABLED"
        not_json = client.post("/v1/authorize", content=b"{not json")
        assert (not_json.status_code, not_json.json()["error"]["reason_code"]) == (
            400,
            "API_BAD_PARAMETER",
        )


def test_a_body_nested_too_deep_is_400_not_500(api_ledger: ApiLedger) -> None:
    """Within the size limit, yet deeper than the JSON parser recurses."""
    with api_ledger.client("runtime") as client:
        response = client.post("/v1/authorize", content=b"[" * 1500 + b"]" * 1500)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "reason_code": "API_BAD_PARAMETER",
        "message": "body: nests too deeply",
    }


def test_headers_over_16_kib_are_431_under_any_parser(reader: httpx.Client) -> None:
    from claw_ledger.api.limits import MAX_HEAD_BYTES

    fits = reader.get("/v1/halts", headers={"X-Pad": "a" * (MAX_HEAD_BYTES - 1024)})
    assert fits.status_code == 200, fits.text
    response = reader.get("/v1/halts", headers={"X-Pad": "a" * MAX_HEAD_BYTES})
    assert response.status_code == 431
    assert response.json()["error"]["reason_code"] == "API_HEADERS_TOO_LARGE"


def test_an_oversized_chunked_body_is_413(api_ledger: ApiLedger) -> None:
    def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    with api_ledger.client("runtime") as client:
        response = client.post("/v1/authorize", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["reason_code"] == "API_BODY_TOO_LARGE"


def test_a_lying_content_length_is_refused(api_ledger: ApiLedger) -> None:
    # a raw request: clients will not send a Content-Length they do not mean
    key = api_ledger.keys["runtime"]
    request = (
        "POST /v1/authorize HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 999999999\r\n\r\n{{}}"
    ).encode()
    with socket.create_connection(("127.0.0.1", api_ledger.server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    answer = received.decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "API_BODY_TOO_LARGE" in answer


def test_unknown_routes_and_methods_answer_json(reader: httpx.Client) -> None:
    missing = reader.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()["error"]["reason_code"]) == (404, "API_NOT_FOUND")
    wrong = reader.delete("/v1/timeline")
    assert (wrong.status_code, wrong.json()["error"]["reason_code"]) == (
        405,
        "API_METHOD_NOT_ALLOWED",
    )
