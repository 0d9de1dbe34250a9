"""One fixture workspace per check id: the failing one yields the check, the passing one not.

``tests/openclaw/fixtures/<check>/{fail,pass}/`` hold ``policy.jsonc``,
``openclaw.json`` and, for the TOOLS.md checks, ``TOOLS.md``. The failing
fixture's complete findings are pinned in ``expected-findings.json`` so a
change to a message, an ``oc://`` path or the order of findings is noticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openclaw_policy import js_stringify, run_policy_check
from openclaw_policy.findings import POLICY_CHECK_IDS

FIXTURES = Path(__file__).parent / "fixtures"


def _name(check_id: str) -> str:
    return check_id.removeprefix("policy/")


def _run(directory: Path):  # type: ignore[no-untyped-def]
    return run_policy_check(None, directory / "openclaw.json", directory, env={})


def test_every_check_id_has_a_fixture_pair() -> None:
    names = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    assert names == {_name(check_id) for check_id in POLICY_CHECK_IDS}
    for name in names:
        assert (FIXTURES / name / "fail").is_dir()
        assert (FIXTURES / name / "pass").is_dir()


@pytest.mark.parametrize("check_id", POLICY_CHECK_IDS)
def test_failing_fixture_reports_the_check(check_id: str) -> None:
    directory = FIXTURES / _name(check_id) / "fail"
    result = _run(directory)
    assert check_id in [finding.check_id for finding in result.findings]
    assert result.exit_code == 1
    assert result.ok is False
    expected = json.loads((directory / "expected-findings.json").read_text(encoding="utf-8"))
    assert [finding.to_json() for finding in result.findings] == expected


@pytest.mark.parametrize("check_id", POLICY_CHECK_IDS)
def test_passing_fixture_does_not_report_the_check(check_id: str) -> None:
    result = _run(FIXTURES / _name(check_id) / "pass")
    assert check_id not in [finding.check_id for finding in result.findings]
    assert result.findings == ()
    assert result.exit_code == 0
    assert result.attestation is not None
    assert result.attestation.ok is True


@pytest.mark.parametrize("check_id", POLICY_CHECK_IDS)
def test_check_output_is_deterministic_apart_from_checked_at(check_id: str) -> None:
    directory = FIXTURES / _name(check_id) / "fail"
    first, second = _run(directory).to_json(), _run(directory).to_json()
    first["attestation"].pop("checkedAt")
    second["attestation"].pop("checkedAt")
    assert js_stringify(first) == js_stringify(second)
