"""Every route of the app × no key / bad key / revoked key / each role.

The routes come from the app itself, and the table of what a permitted caller
gets must name exactly those routes: a new route cannot escape the matrix.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from claw_ledger.api.auth import route_scope
from claw_ledger.apikeys import ROLE_SCOPES, ROLES
from tests.fixtures_api import ApiLedger

pytestmark = pytest.mark.integration

#: (method, path template) -> status a permitted caller gets on this ledger
PERMITTED: dict[tuple[str, str], int] = {
    ("GET", "/v1/timeline"): 200,
    ("GET", "/v1/events/{event_id}"): 200,
    ("GET", "/v1/quarantine"): 200,
    # no checkpointer, bundles or Trust Pulse on this build: 503 API_NOT_ENABLED
    ("GET", "/v1/checkpoints/latest"): 503,
    ("GET", "/v1/runs/{job_id}"): 200,
    ("GET", "/v1/runs/{job_id}/bundle"): 503,
    ("GET", "/v1/halts"): 200,
    ("GET", "/v1/tokens/{jti}"): 200,
    ("GET", "/v1/policies/{policy_hash}"): 200,
    ("GET", "/v1/pulse/{pulse_id}"): 503,
    ("GET", "/metrics"): 200,
    ("POST", "/v1/authorize"): 503,
    ("GET", "/healthz"): 200,
    ("GET", "/readyz"): 200,
}


def _routes(api: ApiLedger) -> list[tuple[str, str, str]]:
    """(method, path template, scope) of every API route the running app serves."""
    found: list[tuple[str, str, str]] = []
    for route in api.server.app.routes:
        if isinstance(route, APIRoute):
            scope = route_scope(route.openapi_extra)
            assert scope is not None and route.methods is not None, route.path
            found.extend((method, route.path, scope) for method in sorted(route.methods))
    return found


def _concrete(api: ApiLedger, template: str) -> str:
    return template.format(
        event_id=api.demo.committed_event,
        job_id=api.demo.job,
        jti=api.demo.jti,
        policy_hash=api.demo.policy_hash,
        pulse_id="pulse-1",
    )


def _call(api: ApiLedger, method: str, template: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = b"{}" if method == "POST" else None
    with httpx.Client(base_url=api.url, timeout=30) as client:
        return client.request(method, _concrete(api, template), headers=headers, content=body)


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"reason_code", "message"}, body
    assert body["error"]["message"]
    return dict(body["error"])


def test_the_matrix_covers_every_route_of_the_app(api_ledger: ApiLedger) -> None:
    served = {(method, path) for method, path, _ in _routes(api_ledger)}
    assert served == set(PERMITTED)


def test_only_the_probes_are_public(api_ledger: ApiLedger) -> None:
    public = {path for _, path, scope in _routes(api_ledger) if scope == "public"}
    assert public == {"/healthz", "/readyz"}


def test_no_key_is_401_with_a_reason_code(api_ledger: ApiLedger) -> None:
    for method, template, scope in _routes(api_ledger):
        response = _call(api_ledger, method, template, None)
        if scope == "public":
            assert response.status_code == PERMITTED[(method, template)], response.text
            continue
        assert response.status_code == 401, (template, response.text)
        assert _error(response)["reason_code"] == "API_KEY_MISSING"
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer clk_000000000000_" + "A" * 43,  # well formed, unknown
        "Bearer not-a-key",
        "Bearer clk_' OR '1'='1",
        "Basic dXNlcjpwYXNz",  # another scheme: no bearer key at all
        "clk_000000000000_" + "A" * 43,  # no scheme
    ],
)
def test_an_unknown_or_malformed_key_is_401(api_ledger: ApiLedger, authorization: str) -> None:
    for method, template, scope in _routes(api_ledger):
        if scope == "public":
            continue
        headers = {"Authorization": authorization}
        with httpx.Client(base_url=api_ledger.url, timeout=30) as client:
            response = client.request(method, _concrete(api_ledger, template), headers=headers)
        assert response.status_code == 401, (template, authorization, response.text)
        expected = "API_KEY_INVALID" if authorization.startswith("Bearer") else "API_KEY_MISSING"
        assert _error(response)["reason_code"] == expected


def test_a_revoked_key_is_401(api_ledger: ApiLedger) -> None:
    for method, template, scope in _routes(api_ledger):
        if scope == "public":
            continue
        response = _call(api_ledger, method, template, api_ledger.revoked_key)
        assert response.status_code == 401, template
        assert _error(response)["reason_code"] == "API_KEY_INVALID"


def test_a_key_of_another_role_is_403_and_the_right_role_passes(api_ledger: ApiLedger) -> None:
    checked = {"denied": 0, "allowed": 0}
    for method, template, scope in _routes(api_ledger):
        if scope == "public":
            continue
        for role in ROLES:
            response = _call(api_ledger, method, template, api_ledger.keys[role])
            if scope in ROLE_SCOPES[role]:
                assert response.status_code == PERMITTED[(method, template)], (
                    role,
                    template,
                    response.text,
                )
                checked["allowed"] += 1
            else:
                assert response.status_code == 403, (role, template, response.text)
                error = _error(response)
                assert error["reason_code"] == "API_ROLE_FORBIDDEN"
                assert role in error["message"]
                checked["denied"] += 1
    # reader routes deny runtime; authorize denies reader and operator
    assert checked["denied"] >= 12 and checked["allowed"] >= 30, checked


def test_a_503_feature_route_says_what_is_missing(api_ledger: ApiLedger) -> None:
    for (method, template), status in PERMITTED.items():
        if status != 503:
            continue
        response = _call(api_ledger, method, template, api_ledger.keys["admin"])
        error = _error(response)
        assert error["reason_code"] == "API_NOT_ENABLED", template
    bundle = _call(api_ledger, "GET", "/v1/runs/{job_id}/bundle", api_ledger.keys["reader"])
    assert "bundles" in _error(bundle)["message"]
