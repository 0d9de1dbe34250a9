"""The run rules: run.manifest_approved (the URM and its approvals), run.started and
run.completed."""

from __future__ import annotations

from typing import Any

from ledger.errors import ReasonCode
from ledger.types.runs import output_flags
from ledger.urm import sign_approval, urm_hash_b64u
from ledger.verify import Accepted
from ledger.wpc import policy_hash_b64u

from ._rules_support import OTHER_WPC, _complete, _start, _start_refused
from ._support import WPC_EXAMPLE, Ledger, ts

# --- URM submission ---------------------------------------------------------------------


def _submit(ledger: Ledger, body: dict[str, Any], signer: Any = None) -> ReasonCode:
    refused = ledger.refused(
        signer or ledger.keys.runtime, "run.manifest_approved", f"job:{body['job_id']}", body
    )
    return refused.code


def _urm_body(ledger: Ledger, wpc: str, approvers: Any = None, **over: Any) -> dict[str, Any]:
    urm = ledger.urm("job-1", wpc, "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0", **over)
    return ledger.approve_body(urm, approvers)


def test_urm_without_approvals(ledger: Ledger) -> None:
    body = _urm_body(ledger, ledger.publish_wpc(), approvers=[])
    assert _submit(ledger, body) == ReasonCode.URM_NO_APPROVALS
    assert "job-1" not in ledger.state.jobs


def test_self_approval(ledger: Ledger) -> None:
    requester = ledger.keys.runtime_approver
    body = _urm_body(ledger, ledger.publish_wpc(), approvers=[requester])
    assert _submit(ledger, body, requester) == ReasonCode.URM_SELF_APPROVAL
    body = _urm_body(ledger, next(iter(ledger.state.policies)), approvers=[ledger.keys.approver])
    ledger.ok(requester, "run.manifest_approved", "job:job-1", body)


def test_approver_without_the_role(ledger: Ledger) -> None:
    wpc = ledger.publish_wpc()
    assert _submit(ledger, _urm_body(ledger, wpc, approvers=[ledger.keys.outsider])) == (
        ReasonCode.URM_APPROVER_NOT_ALLOWED
    )
    assert _submit(ledger, _urm_body(ledger, wpc, approvers=[ledger.keys.issuer])) == (
        ReasonCode.URM_APPROVER_NOT_ALLOWED
    )


def test_forged_approval(ledger: Ledger) -> None:
    body = _urm_body(ledger, ledger.publish_wpc())
    body["approvals"][0]["approved_at"] = ts(5)
    assert _submit(ledger, body) == ReasonCode.URM_APPROVAL_INVALID


def test_urm_names_unknown_or_revoked_wpc(ledger: Ledger) -> None:
    assert _submit(ledger, _urm_body(ledger, policy_hash_b64u(OTHER_WPC))) == ReasonCode.WPC_UNKNOWN
    wpc = ledger.publish_wpc()
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "reason": "x"},
    )
    assert _submit(ledger, _urm_body(ledger, wpc)) == ReasonCode.WPC_REVOKED


def test_urm_hash_and_job_consistency(ledger: Ledger) -> None:
    wpc = ledger.publish_wpc()
    body = _urm_body(ledger, wpc)
    body["urm_hash_b64u"] = policy_hash_b64u(WPC_EXAMPLE)
    assert _submit(ledger, body) == ReasonCode.URM_INVALID
    body = _urm_body(ledger, wpc)
    body["job_id"] = "job-2"
    assert _submit(ledger, body) == ReasonCode.URM_INVALID
    body = _urm_body(ledger, wpc, urm_version="7")
    assert _submit(ledger, body) == ReasonCode.URM_INVALID
    ledger.ok(ledger.keys.runtime, "run.manifest_approved", "job:job-1", _urm_body(ledger, wpc))
    assert _submit(ledger, _urm_body(ledger, wpc)) == ReasonCode.JOB_ALREADY_APPROVED
    assert _submit(ledger, _urm_body(ledger, wpc), ledger.keys.issuer) == (
        ReasonCode.ROLE_NOT_ALLOWED
    )


def test_approval_by_revoked_approver(ledger: Ledger) -> None:
    wpc = ledger.publish_wpc()
    ledger.state.keys[ledger.keys.approver.did].revoked = True
    urm = ledger.urm("job-1", wpc, "7e_jFMJ7ZusdR84fPjfCRzz9_rWXm5kLjZFrxm-JVm0")
    digest = urm_hash_b64u(urm)
    body = {
        "job_id": "job-1",
        "urm_hash_b64u": digest,
        "urm": urm,
        "approvals": [sign_approval(digest, ledger.keys.approver)],
    }
    assert _submit(ledger, body) == ReasonCode.URM_APPROVER_NOT_ALLOWED


# --- run.started ------------------------------------------------------------------------


def test_start_unknown_job(ledger: Ledger) -> None:
    body = ledger.issue(job="job-9")
    assert _start_refused(ledger, _start(ledger, "job-9", body["jti"])) == ReasonCode.JOB_UNKNOWN


def test_token_for_another_job(ledger: Ledger) -> None:
    wpc, _, _ = ledger.approved_job("job-1")
    other = ledger.issue(job="job-2", policy=wpc)
    assert _start_refused(ledger, _start(ledger, "job-1", other["jti"])) == (
        ReasonCode.JOB_BINDING_MISMATCH
    )
    unbound = ledger.issue(job=None, policy=wpc)
    assert _start_refused(ledger, _start(ledger, "job-1", unbound["jti"])) == (
        ReasonCode.JOB_BINDING_MISMATCH
    )


def test_start_with_unknown_revoked_or_expired_token(ledger: Ledger) -> None:
    _, token, _ = ledger.approved_job()
    assert (
        _start_refused(ledger, _start(ledger, "job-1", "cst_missing")) == ReasonCode.TOKEN_UNKNOWN
    )
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"]), at=ts(900)) == (
        ReasonCode.TOKEN_EXPIRED
    )
    ledger.ok(
        ledger.keys.issuer,
        "token.revoked",
        f"token:{token['jti']}",
        {"jti": token["jti"], "reason": "rotated"},
    )
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"])) == ReasonCode.TOKEN_REVOKED


def test_start_policy_pin_mismatch(ledger: Ledger) -> None:
    ledger.approved_job()
    other = ledger.publish_wpc(OTHER_WPC)
    pinned_elsewhere = ledger.issue(policy=other)
    assert _start_refused(ledger, _start(ledger, "job-1", pinned_elsewhere["jti"])) == (
        ReasonCode.POLICY_PIN_MISMATCH
    )
    unpinned = ledger.issue(policy=None)
    assert _start_refused(ledger, _start(ledger, "job-1", unpinned["jti"])) == (
        ReasonCode.POLICY_PIN_MISMATCH
    )


def test_start_scope_hash_mismatch(ledger: Ledger) -> None:
    wpc, _, _ = ledger.approved_job()
    other = ledger.issue(policy=wpc, sub="agent:beta")
    assert _start_refused(ledger, _start(ledger, "job-1", other["jti"])) == (
        ReasonCode.TOKEN_SCOPE_HASH_MISMATCH
    )


def test_start_names_another_urm(ledger: Ledger) -> None:
    _, token, _ = ledger.approved_job()
    body = _start(ledger, "job-1", token["jti"], urm=policy_hash_b64u(OTHER_WPC))
    assert _start_refused(ledger, body) == ReasonCode.JOB_BINDING_MISMATCH


def test_start_after_wpc_revoked(ledger: Ledger) -> None:
    wpc, token, _ = ledger.approved_job()
    ledger.ok(
        ledger.keys.policy_admin,
        "policy.revoked",
        f"policy:{wpc}",
        {"policy_hash_b64u": wpc, "reason": "x"},
    )
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"])) == ReasonCode.WPC_REVOKED


def test_start_twice(ledger: Ledger) -> None:
    _, token = ledger.started_job()
    assert _start_refused(ledger, _start(ledger, "job-1", token["jti"]), at=ts(70)) == (
        ReasonCode.RUN_ALREADY_STARTED
    )


# --- run.completed ----------------------------------------------------------------------


def test_outputs_list_with_bad_hashes(ledger: Ledger) -> None:
    ledger.started_job()
    for bad in ("CD" * 32, "cd" * 31, "sha256:" + "cd" * 32, "", "zz" * 32):
        body = {"job_id": "job-1", "outputs": [{"name": "recon_summary.json", "sha256": bad}]}
        refused = ledger.refused(ledger.keys.runtime, "run.completed", "job:job-1", body)
        assert refused.code == ReasonCode.OUTPUT_HASH_INVALID
    twice = [{"name": "a", "sha256": "cd" * 32}, {"name": "a", "sha256": "ab" * 32}]
    refused = ledger.refused(
        ledger.keys.runtime, "run.completed", "job:job-1", {"job_id": "job-1", "outputs": twice}
    )
    assert refused.code == ReasonCode.OUTPUT_HASH_INVALID


def test_output_hash_flags(ledger: Ledger) -> None:
    ledger.started_job()
    outcome = _complete(
        ledger,
        [
            {"name": "recon_summary.json", "sha256": "ee" * 32},
            {"name": "debug.log", "sha256": "ab" * 32},
        ],
    )
    assert isinstance(outcome, Accepted)
    assert outcome.rows
    job = ledger.state.jobs["job-1"]
    assert job["outputs_match"] is False
    flags = {(f["name"], f["flag"]) for f in job["output_flags"]}
    assert flags == {
        ("recon_summary.json", "hash_mismatch"),
        ("close_report.pdf", "missing"),
        ("debug.log", "unexpected"),
    }


def test_complete_out_of_order(ledger: Ledger) -> None:
    body = {"job_id": "job-1", "outputs": []}
    assert ledger.refused(ledger.keys.runtime, "run.completed", "job:job-1", body).code == (
        ReasonCode.JOB_UNKNOWN
    )
    ledger.approved_job()
    assert ledger.refused(ledger.keys.runtime, "run.completed", "job:job-1", body).code == (
        ReasonCode.RUN_NOT_STARTED
    )


def test_output_flags_function() -> None:
    expected: list[dict[str, Any]] = [
        {"name": "a", "sha256": None},
        {"name": "b", "sha256": "11" * 32},
    ]
    assert (
        output_flags(
            expected, [{"name": "a", "sha256": "00" * 32}, {"name": "b", "sha256": "11" * 32}]
        )
        == []
    )
