"""``claw-ledger policy check`` / ``watch`` through click's CliRunner: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import producers.publish
from claw_ledger.cli import cli
from ledger.crypto import KeyPair, save_key
from ledger.errors import ReasonCode
from ledger.types.attestations import PolicyAttested, PolicyDrift
from producers.publish import Committed, PublishOutcome, PublishTarget, Quarantined, Verdict
from producers.sdk import Position

FIXTURES = Path(__file__).parent / "fixtures"
ATTESTATION_HASH = "sha256:974fc94fd4a943052ee5cece07e8c87994454986e79a63c8c683a91ca7370eea"
FAKE_KAFKA = "127.0.0.1:1"
FAKE_DATABASE = "postgresql://nobody@127.0.0.1:1/nothing"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("OPENCLAW_CONFIG_PATH", "OPENCLAW_STATE_DIR", "OPENCLAW_HOME", "OPENCLAW_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def workspace(directory: Path, policy: str | None, config: str = "{}") -> Path:
    directory.mkdir(exist_ok=True)
    if policy is not None:
        (directory / "policy.jsonc").write_text(policy, encoding="utf-8")
    (directory / "openclaw.json").write_text(config, encoding="utf-8")
    return directory


def args(directory: Path, *extra: str) -> list[str]:
    return ["--config", str(directory / "openclaw.json"), "--workspace", str(directory), *extra]


def test_check_clean_json_is_the_document(runner: CliRunner, tmp_path: Path) -> None:
    directory = workspace(tmp_path, '{"channels":{"denyRules":[]}}')
    result = runner.invoke(cli, ["policy", "check", *args(directory, "--json")])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    document = json.loads(result.output)
    keys = ["ok", "attestation", "evidence", "checksRun", "checksSkipped", "findings"]
    assert list(document) == keys
    assert document["ok"] is True
    assert document["attestation"]["attestationHash"] == ATTESTATION_HASH
    assert document["attestation"]["policy"] == {
        "path": "policy.jsonc",
        "hash": "sha256:50280d76187fc37fb6965f90954af352e70c3e6d1ab892dc5ac0bb1c902d7b62",
    }
    assert '"findings":[]}' in result.output  # compact, like JSON.stringify


def test_check_explicit_policy_path_keeps_workspace_relative_name(
    runner: CliRunner, tmp_path: Path
) -> None:
    directory = workspace(tmp_path, '{"channels":{"denyRules":[]}}')
    result = runner.invoke(
        cli,
        [
            "policy",
            "check",
            "--policy",
            str(directory / "policy.jsonc"),
            *args(directory, "--json"),
        ],
    )
    assert json.loads(result.output)["attestation"]["attestationHash"] == ATTESTATION_HASH


def test_check_findings_exit_1_and_table(runner: CliRunner) -> None:
    directory = FIXTURES / "channels-denied-provider" / "fail"
    result = runner.invoke(cli, ["policy", "check", *args(directory)])
    assert result.exit_code == 1
    assert "1 finding(s)" in result.output
    assert "policy/channels-denied-provider" in result.output
    assert "attestation" in result.output and "sha256:" in result.output


def test_check_table_writes_control_characters_out(runner: CliRunner, tmp_path: Path) -> None:
    """A config's names and a policy's reasons are printed, not obeyed: an escape
    sequence in them would hide text or set the terminal's title."""
    policy = (
        '{channels: {denyRules: [{id: "no-x", when: {provider: "tele\\u001b[8mgram"},'
        ' reason: "see \\u001b]0;title\\u0007 [/x] [bold]this[/bold]"}]}}'
    )
    config = '{"channels": {"tele\\u001b[8mgram": {"enabled": true}}}'
    directory = workspace(tmp_path / "w", policy, config)
    result = runner.invoke(cli, ["policy", "check", *args(directory)], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert (
        "Channel 'tele\\u001b[8mgram' uses denied provider 'tele\\u001b[8mgram'." in result.output
    )
    assert "fix: see \\u001b]0;title\\u0007 [/x] [bold]this[/bold]" in result.output
    # the JSON report keeps the values exactly
    document = json.loads(
        runner.invoke(cli, ["policy", "check", *args(directory, "--json")]).output
    )
    assert document["findings"][0]["message"].startswith("Channel 'tele\x1b[8mgram'")


def test_check_json_findings(runner: CliRunner) -> None:
    directory = FIXTURES / "gateway-remote-enabled" / "fail"
    result = runner.invoke(cli, ["policy", "check", *args(directory, "--json")])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False
    assert [f["checkId"] for f in document["findings"]] == ["policy/gateway-remote-enabled"] * 2
    assert "gatewayExposure" in document["evidence"]


def test_severity_threshold(runner: CliRunner, tmp_path: Path) -> None:
    directory = workspace(tmp_path, None)  # missing policy: a warning
    assert runner.invoke(cli, ["policy", "check", *args(directory)]).exit_code == 1
    quiet = runner.invoke(
        cli, ["policy", "check", *args(directory, "--severity-min", "error", "--json")]
    )
    assert quiet.exit_code == 0
    document = json.loads(quiet.output)
    assert document["ok"] is True and document["findings"] == []
    assert "policy" not in document["attestation"]


@pytest.mark.parametrize(
    "extra",
    [
        ["--severity-min", "fatal"],
        ["--bogus"],
        ["--publish"],  # needs --key
    ],
)
def test_check_usage_errors_exit_2(runner: CliRunner, tmp_path: Path, extra: list[str]) -> None:
    directory = workspace(tmp_path, "{}")
    result = runner.invoke(cli, ["policy", "check", *args(directory, *extra)])
    assert result.exit_code == 2


def test_check_runtime_error_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    directory = workspace(tmp_path, None)
    (directory / "policy.jsonc").mkdir()  # exists but cannot be read as a file
    result = runner.invoke(cli, ["policy", "check", *args(directory)])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_check_expected_hash_flags(runner: CliRunner, tmp_path: Path) -> None:
    directory = workspace(tmp_path, '{"channels":{"denyRules":[]}}')
    ok = runner.invoke(
        cli, ["policy", "check", *args(directory, "--expected-attestation-hash", ATTESTATION_HASH)]
    )
    assert ok.exit_code == 0
    stale = runner.invoke(
        cli,
        ["policy", "check", *args(directory, "--expected-attestation-hash", "sha256:x", "--json")],
    )
    assert stale.exit_code == 1
    assert json.loads(stale.output)["findings"][0]["checkId"] == "policy/attestation-hash-mismatch"
    wrong_policy = runner.invoke(
        cli, ["policy", "check", *args(directory, "--expected-hash", "sha256:x", "--json")]
    )
    assert (
        json.loads(wrong_policy.output)["findings"][0]["checkId"] == "policy/policy-hash-mismatch"
    )


def test_config_from_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "openclaw.json").write_text('{"gateway": {"bind": "lan"}}', encoding="utf-8")
    (tmp_path / "policy.jsonc").write_text(
        "{gateway: {exposure: {allowNonLoopbackBind: false}}}", encoding="utf-8"
    )
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(state))
    result = runner.invoke(cli, ["policy", "check", "--workspace", str(tmp_path), "--json"])
    assert result.exit_code == 1
    [finding] = json.loads(result.output)["findings"]
    assert (
        finding["message"] == "Gateway bind setting 'gateway-bind' permits non-loopback exposure."
    )
    # $OPENCLAW_CONFIG_PATH wins; a missing config is an empty one (bind omitted)
    monkeypatch.setenv("OPENCLAW_CONFIG_PATH", str(tmp_path / "missing.json"))
    result = runner.invoke(cli, ["policy", "check", "--workspace", str(tmp_path), "--json"])
    [finding] = json.loads(result.output)["findings"]
    assert finding["message"].startswith("Gateway bind is omitted")


def test_watch_once_clean_and_stale(runner: CliRunner, tmp_path: Path) -> None:
    directory = workspace(tmp_path, '{"channels":{"denyRules":[]}}')
    clean = runner.invoke(cli, ["policy", "watch", "--once", *args(directory)])
    assert clean.exit_code == 0
    assert clean.output.startswith(f"policy watch: clean (attestation {ATTESTATION_HASH}")
    stale = runner.invoke(
        cli,
        [
            "policy",
            "watch",
            "--once",
            "--json",
            *args(directory, "--expected-attestation-hash", "sha256:old"),
        ],
    )
    assert stale.exit_code == 1
    report = json.loads(stale.output)
    assert report["status"] == "stale"
    assert report["expectedAttestationHash"] == "sha256:old"
    assert list(report) == ["status", "ok", "expectedAttestationHash", "attestation", "findings"]


def test_watch_once_findings(runner: CliRunner) -> None:
    directory = FIXTURES / "tools-elevated-enabled" / "fail"
    result = runner.invoke(cli, ["policy", "watch", "--once", *args(directory)])
    assert result.exit_code == 1
    assert "1 finding(s); accepted attestation cannot be updated" in result.output


@pytest.mark.parametrize("value", ["100", "249", "+500", "0500", "abc", "1e3", " "])
def test_watch_interval_validation(runner: CliRunner, tmp_path: Path, value: str) -> None:
    directory = workspace(tmp_path, "{}")
    result = runner.invoke(
        cli, ["policy", "watch", "--once", "--interval-ms", value, *args(directory)]
    )
    assert result.exit_code == 2


def test_watch_reports_only_changes(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = workspace(tmp_path, '{"channels":{"denyRules":[]}}')
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:  # after the second poll the config drifts
            (directory / "openclaw.json").write_text(
                '{"channels": {"slack": {}}}', encoding="utf-8"
            )

    monkeypatch.setattr("claw_ledger.cli.policy.time.sleep", fake_sleep)
    result = runner.invoke(
        cli,
        ["policy", "watch", "--json", "--interval-ms", "250", "--max-polls", "4", *args(directory)],
    )
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 2  # initial state, then the drifted one
    assert lines[0]["attestation"]["attestationHash"] == ATTESTATION_HASH
    assert lines[1]["attestation"]["attestationHash"] != ATTESTATION_HASH
    assert sleeps == [0.25, 0.25, 0.25]


class _FakePublisher:
    """Stands in for ``producers.publish.publish_event_sync``: records, then answers
    with ``verdict`` (committed by default)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.targets: list[PublishTarget] = []
        self.verdict: Verdict | None = None
        self.failure: Exception | None = None

    def publish_event_sync(
        self,
        target: PublishTarget,
        key: KeyPair,
        event_type: str,
        stream: str,
        body: dict[str, Any],
        **options: Any,
    ) -> PublishOutcome:
        assert isinstance(key, KeyPair)
        if self.failure is not None:
            raise self.failure
        self.targets.append(target)
        self.events.append((event_type, stream, body))
        n = len(self.events)
        sent = Position(f"event-{n}", stream, target.ingress_topic, 0, n)
        return PublishOutcome(event_type, sent, self.verdict or Committed(n, n, "chain"))


@pytest.fixture
def fake_publish(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[_FakePublisher, Path]:
    publisher = _FakePublisher()
    monkeypatch.setenv("CLAW_LEDGER_KAFKA", FAKE_KAFKA)
    monkeypatch.setenv("CLAW_LEDGER_DATABASE_URL", FAKE_DATABASE)
    monkeypatch.setenv("CLAW_LEDGER_TOPIC_PREFIX", "acme")
    monkeypatch.setattr(producers.publish, "publish_event_sync", publisher.publish_event_sync)
    key_path = tmp_path / "keys" / "policy.key"
    key_path.parent.mkdir()
    save_key(KeyPair.generate("policy"), key_path)
    return publisher, key_path


def test_check_publish_attested(
    runner: CliRunner, tmp_path: Path, fake_publish: tuple[_FakePublisher, Path]
) -> None:
    publisher, key_path = fake_publish
    directory = workspace(tmp_path / "ws", '{"channels":{"denyRules":[]}}')
    result = runner.invoke(
        cli, ["policy", "check", *args(directory, "--json", "--publish", "--key", str(key_path))]
    )
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays exactly the JSON document
    [(event_type, stream, body)] = publisher.events
    assert publisher.targets == [
        PublishTarget(FAKE_KAFKA, "acme.ingress", FAKE_DATABASE, control_topic="acme.control")
    ]
    assert "published policy.attested on openclaw-policy:" in result.stderr
    assert '"status":"committed"' in result.stderr
    assert event_type == "policy.attested"
    assert (
        stream
        == "openclaw-policy:sha256:50280d76187fc37fb6965f90954af352e70c3e6d1ab892dc5ac0bb1c902d7b62"
    )
    assert body["attestation_hash"] == ATTESTATION_HASH
    assert body["ok"] is True and body["findings_count"] == 0
    PolicyAttested.model_validate(body)  # the ledger's own schema for the event
    assert set(body) == {
        "ok",
        "policy_hash",
        "workspace_hash",
        "findings_hash",
        "attestation_hash",
        "checked_at",
        "policy_path",
        "findings_count",
    }


def test_watch_publishes_drift(
    runner: CliRunner,
    tmp_path: Path,
    fake_publish: tuple[_FakePublisher, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher, key_path = fake_publish
    directory = workspace(tmp_path / "ws", '{"channels":{"denyRules":[]}}')

    def drift(_seconds: float) -> None:
        (directory / "openclaw.json").write_text('{"channels": {"slack": {}}}', encoding="utf-8")

    monkeypatch.setattr("claw_ledger.cli.policy.time.sleep", drift)
    result = runner.invoke(
        cli,
        [
            "policy",
            "watch",
            "--max-polls",
            "2",
            *args(directory, "--publish", "--key", str(key_path)),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [event for event, _, _ in publisher.events] == [
        "policy.attested",
        "policy.drift",
        "policy.attested",
    ]
    drift_body = publisher.events[1][2]
    PolicyDrift.model_validate(drift_body)
    PolicyAttested.model_validate(publisher.events[2][2])
    assert drift_body["previous_attestation_hash"] == ATTESTATION_HASH
    assert drift_body["attestation_hash"] == publisher.events[2][2]["attestation_hash"]
    assert set(drift_body) == {
        "previous_attestation_hash",
        "attestation_hash",
        "ok",
        "checked_at",
        "findings_count",
    }


def test_a_refused_attestation_exits_2_with_its_reason(
    runner: CliRunner, tmp_path: Path, fake_publish: tuple[_FakePublisher, Path]
) -> None:
    publisher, key_path = fake_publish
    publisher.verdict = Quarantined(ReasonCode.ROLE_NOT_ALLOWED.value, "not a policy signer")
    (tmp_path / "ws").mkdir()
    directory = workspace(tmp_path / "ws", '{"channels":{"denyRules":[]}}')
    result = runner.invoke(
        cli, ["policy", "check", *args(directory, "--publish", "--key", str(key_path))]
    )
    assert result.exit_code == 2
    assert (
        "error: ROLE_NOT_ALLOWED: the ledger refused policy.attested: not a policy signer"
        in result.stderr
    )


def test_a_failing_producer_is_a_publish_error(
    runner: CliRunner, tmp_path: Path, fake_publish: tuple[_FakePublisher, Path]
) -> None:
    publisher, key_path = fake_publish
    publisher.failure = OSError("broker unreachable")
    (tmp_path / "ws").mkdir()
    directory = workspace(tmp_path / "ws", '{"channels":{"denyRules":[]}}')
    result = runner.invoke(
        cli, ["policy", "check", *args(directory, "--publish", "--key", str(key_path))]
    )
    assert result.exit_code == 2
    assert "error: publishing policy.attested failed: broker unreachable" in result.stderr
    assert "Traceback" not in result.output


def test_key_without_publish_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, fake_publish: tuple[_FakePublisher, Path]
) -> None:
    _, key_path = fake_publish
    directory = workspace(tmp_path / "ws", "{}")
    result = runner.invoke(cli, ["policy", "check", *args(directory, "--key", str(key_path))])
    assert result.exit_code == 2
