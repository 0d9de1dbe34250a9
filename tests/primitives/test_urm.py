"""URM validation and hashing (formats.md §7) and approvals."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ledger.canonical import jcs
from ledger.encoding import sha256_b64u
from ledger.errors import ManifestError, ReasonCode
from ledger.urm import (
    APPROVAL_DOMAIN,
    approval_signing_bytes,
    check_approvals,
    parse_urm_bytes,
    sign_approval,
    urm_hash_b64u,
    validate_urm,
    verify_approval,
)
from tests.core._helpers import key

from ._support import NOW_TS, Ledger

WPC = "OMfo1i4Qvrnbfht-L-4Zl2ElG1U5xenjvTXgXgShVJ4"
SCOPE = "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0"


def _urm(**over: Any) -> dict[str, Any]:
    return Ledger().urm("acct:finops|proj:close|run:2026-02-11T10:15Z", WPC, SCOPE, **over)


def test_seed_001_urm_validates_and_hashes() -> None:
    urm = _urm()
    validated = validate_urm(urm)
    assert validated.job.job_id.startswith("acct:finops")
    assert urm_hash_b64u(urm) == sha256_b64u(jcs(urm))
    assert parse_urm_bytes(json.dumps(urm, indent=2).encode()) == urm


def test_urm_json5() -> None:
    text = (
        "{urm_version: '1', job: {job_id: 'j1', requested_by: 'user:alice', approved_by: [],"
        f" approval_ref: 'T-1'}}, policy: {{wpc_hash_b64u: '{WPC}', cst_scope_hash: '{SCOPE}',"
        " policy_hash_pinning: true}, execution: {agent_runtime: 'OpenClaw', tool_profile: 'ro',"
        " sandbox_mode: 'all', model_routing: 'via clawproxy'}, inputs: [],"
        " expected_outputs: [{name: 'r.json', sha256: null}],"
        " retention: {proof_bundle_days: 30, notes: 'x'},}"
    )
    assert parse_urm_bytes(text.encode())["job"]["job_id"] == "j1"


def _broken(mutate: Any) -> dict[str, Any]:
    urm = copy.deepcopy(_urm())
    mutate(urm)
    return urm


@pytest.mark.parametrize(
    "mutate",
    [
        lambda u: u.update(urm_version="2"),
        lambda u: u.pop("job"),
        lambda u: u["job"].update(job_id=""),
        lambda u: u["job"].update(job_id="has space"),
        lambda u: u["policy"].update(wpc_hash_b64u="WPC_HASH_HERE"),
        lambda u: u["policy"].update(cst_scope_hash="b64u:..."),
        lambda u: u["policy"].update(policy_hash_pinning="yes"),
        lambda u: u["inputs"][0].update(sha256="INPUT_SHA256"),
        lambda u: u["expected_outputs"].append({"name": "close_report.pdf", "sha256": None}),
        lambda u: u["expected_outputs"][1].update(sha256="CD" * 32),
        lambda u: u["retention"].update(proof_bundle_days=0),
        lambda u: u.update(unexpected={"x": 1}),
        lambda u: u["execution"].pop("sandbox_mode"),
    ],
)
def test_invalid_urm(mutate: Any) -> None:
    with pytest.raises(ManifestError) as info:
        validate_urm(_broken(mutate))
    assert info.value.code == ReasonCode.URM_INVALID


def test_urm_syntax_errors() -> None:
    with pytest.raises(ManifestError) as info:
        parse_urm_bytes(b"{urm_version: '1'")
    assert info.value.code == ReasonCode.MALFORMED_JSON


def test_approval_bytes_are_domain_separated() -> None:
    digest = urm_hash_b64u(_urm())
    message = approval_signing_bytes(digest, NOW_TS)
    assert message == b"claw-ledger/urm-approval/v1\n" + digest.encode() + b"\n" + NOW_TS.encode()
    assert message.startswith(APPROVAL_DOMAIN)


def test_approval_round_trip_and_tampering() -> None:
    digest = urm_hash_b64u(_urm())
    approval = sign_approval(digest, key(7), approved_at=NOW_TS)
    assert verify_approval(approval, digest) == key(7).did
    for change in (
        {"approved_at": "2026-02-13T00:00:00.000Z"},
        {"approver_did": key(8).did},
        {"signature_b64u": "A" * 86},
        {"urm_hash_b64u": SCOPE},
        {"extra": "x"},
    ):
        with pytest.raises(ManifestError) as info:
            verify_approval({**approval, **change}, digest)
        assert info.value.code == ReasonCode.URM_APPROVAL_INVALID
    # an approval of another URM does not count for this one
    other = urm_hash_b64u(_urm(retention={"proof_bundle_days": 1, "notes": ""}))
    with pytest.raises(ManifestError) as info:
        verify_approval(sign_approval(other, key(7)), digest)
    assert info.value.code == ReasonCode.URM_APPROVAL_INVALID


def _check(approvals: list[Any], requester: int = 5, approvers: set[int] | None = None) -> None:
    urm = _urm()
    allowed = {key(n).did for n in (approvers if approvers is not None else {7, 8})}
    check_approvals(
        approvals,
        validate_urm(urm),
        urm_hash_b64u(urm),
        requester_did=key(requester).did,
        is_approver=lambda did: did in allowed,
    )


def test_check_approvals_codes() -> None:
    digest = urm_hash_b64u(_urm())
    good = sign_approval(digest, key(7), approved_at=NOW_TS)
    _check([good])
    with pytest.raises(ManifestError) as info:
        _check([])
    assert info.value.code == ReasonCode.URM_NO_APPROVALS
    with pytest.raises(ManifestError) as info:
        _check([good, good])
    assert info.value.code == ReasonCode.URM_APPROVAL_INVALID
    with pytest.raises(ManifestError) as info:
        _check([sign_approval(digest, key(5))], requester=5, approvers={5, 7})
    assert info.value.code == ReasonCode.URM_SELF_APPROVAL
    with pytest.raises(ManifestError) as info:
        _check([sign_approval(digest, key(9))])
    assert info.value.code == ReasonCode.URM_APPROVER_NOT_ALLOWED


def test_urm_naming_two_approvers_needs_two_approvals() -> None:
    urm = _urm()
    urm["job"]["approved_by"] = ["user:a", "user:b"]
    digest = urm_hash_b64u(urm)
    one = [sign_approval(digest, key(7))]
    with pytest.raises(ManifestError) as info:
        check_approvals(
            one, validate_urm(urm), digest, requester_did=key(5).did, is_approver=lambda _d: True
        )
    assert info.value.code == ReasonCode.URM_NO_APPROVALS
    two = [*one, sign_approval(digest, key(8))]
    check_approvals(
        two, validate_urm(urm), digest, requester_did=key(5).did, is_approver=lambda _d: True
    )
