"""``/metrics``, ``/readyz``, ``claw-ledger status`` against the real ledger, and the
service when Kafka or Postgres does not answer."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from claw_ledger.api import ApiConfig, Features, Source, create_app
from claw_ledger.api.features import ledger_features
from tests.fixtures_api import ApiLedger, UvicornThread

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _by(samples: dict[Any, float], name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


async def _database_counts(api: ApiLedger) -> tuple[dict[str, int], dict[str, int]]:
    conn = await api.owner()
    try:
        events = await conn.fetch("SELECT event_type, count(*) FROM events GROUP BY 1")
        refused = await conn.fetch("SELECT reason_code, count(*) FROM quarantine GROUP BY 1")
    finally:
        await conn.close()
    return {r[0]: r[1] for r in events}, {r[0]: r[1] for r in refused}


async def test_metrics_count_what_the_ledger_holds_and_count_on(
    api_ledger: ApiLedger, reader: httpx.Client
) -> None:
    response = reader.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    events, refused = await _database_counts(api_ledger)
    committed = _by(samples, "claw_ledger_events_committed_total", "event_type")
    assert committed == {k: float(v) for k, v in events.items()}
    quarantined = _by(samples, "claw_ledger_events_quarantined_total", "reason_code")
    assert quarantined == {k: float(v) for k, v in refused.items()}
    assert quarantined["AGENT_HALTED"] >= 1
    lag = _by(samples, "claw_ledger_consumer_lag", "partition")
    assert set(lag) == {"0", "1", "2", "3"} and all(v >= 0 for v in lag.values())
    assert samples[("claw_ledger_up", (("server", "kafka"),))] == 1.0
    assert samples[("claw_ledger_active_halts", ())] >= 1
    assert ("claw_ledger_halt_propagation_seconds", ()) in samples
    # the processor's heartbeats carry its commit timings
    batches = _by(samples, "claw_ledger_commit_batch_seconds_count", "worker")
    seconds = _by(samples, "claw_ledger_commit_batch_seconds_sum", "worker")
    assert batches and max(batches.values()) >= 1
    assert all(seconds[worker] > 0 for worker, n in batches.items() if n)
    # each processor's last beat, by the server's clock: it beats every 0.5 s
    beat_ages = _by(samples, "claw_ledger_processor_beat_age_seconds", "worker")
    assert set(beat_ages) == set(batches) and min(beat_ages.values()) < 30
    # no checkpointer on this build: the metric is absent, not zero
    assert ("claw_ledger_checkpoint_age_seconds", ()) not in samples

    await api_ledger.harness.halt("job:metrics-drill", "counted")
    await asyncio.sleep(1.2)  # past the snapshot reuse window
    after = _samples(reader.get("/metrics").text)
    now = _by(after, "claw_ledger_events_committed_total", "event_type")
    assert now["agent.halted"] == committed["agent.halted"] + 1
    assert {k: v for k, v in now.items() if k != "agent.halted"} == {
        k: v for k, v in committed.items() if k != "agent.halted"
    }


def test_readyz_is_ready_with_every_check(api_ledger: ApiLedger) -> None:
    with httpx.Client(base_url=api_ledger.url) as client:
        body = client.get("/readyz").json()
        assert client.get("/healthz").json() == {"status": "ok"}
    assert body["ready"] is True
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "postgres",
        "schema",
        "kafka",
        "lag",
        "processors",
    }


def _config(api: ApiLedger, **changes: Any) -> ApiConfig:
    base = ApiConfig.from_settings(api.harness.settings, reader_url=api.reader_url)
    return replace(base, probe_timeout=3.0, **changes)


def test_kafka_down_makes_readyz_fail_and_lag_absent(api_ledger: ApiLedger) -> None:
    config = _config(api_ledger, kafka_bootstrap="127.0.0.1:1")
    with UvicornThread(create_app(config=config)) as server:
        headers = {"Authorization": f"Bearer {api_ledger.keys['reader']}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            ready = client.get("/readyz")
            metrics = _samples(client.get("/metrics").text)
            timeline = client.get("/v1/timeline", params={"limit": 1})
    assert ready.status_code == 503
    body = ready.json()
    assert body["error"]["reason_code"] == "API_NOT_READY"
    assert body["checks"]["kafka"]["ok"] is False and body["checks"]["postgres"]["ok"] is True
    assert metrics[("claw_ledger_up", (("server", "kafka"),))] == 0.0
    assert not _by(metrics, "claw_ledger_consumer_lag", "partition")
    assert _by(metrics, "claw_ledger_events_committed_total", "event_type")
    assert timeline.status_code == 200  # queries need only Postgres


def test_postgres_down_is_503_unavailable_and_healthz_still_answers(
    api_ledger: ApiLedger,
) -> None:
    config = _config(api_ledger, reader_url="postgresql://nobody@127.0.0.1:1/none")
    with UvicornThread(create_app(config=config)) as server:
        headers = {"Authorization": f"Bearer {api_ledger.keys['reader']}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            query = client.get("/v1/halts")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"]["ok"] is False
    assert query.status_code == 503
    assert query.json()["error"]["reason_code"] == "API_UNAVAILABLE"


class _Authorizer:
    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def decide(self, request: Any) -> dict[str, Any]:
        self.calls.append(request)
        halted = request.get("job_id") == "halted"
        return {"allowed": not halted, "reason_code": "AGENT_HALTED" if halted else "OK"}

    async def stop(self) -> None:
        self.stopped = True


async def _bundle(conn: Any, job_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT count(*) AS n FROM events WHERE stream = $1", f"job:{job_id}")
    return {"job_id": job_id, "events": row["n"]} if row["n"] else None


def test_wired_features_serve_and_authorize_is_measured(api_ledger: ApiLedger) -> None:
    authorizer = _Authorizer()
    features = Features(authorizer=authorizer, run_bundle=Source("events", _bundle))
    with UvicornThread(create_app(config=_config(api_ledger, features=features))) as server:
        assert authorizer.started
        runtime = {"Authorization": f"Bearer {api_ledger.keys['runtime']}"}
        reader = {"Authorization": f"Bearer {api_ledger.keys['reader']}"}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            allow = client.post("/v1/authorize", json={"job_id": "j1"}, headers=runtime)
            deny = client.post("/v1/authorize", json={"job_id": "halted"}, headers=runtime)
            bundle = client.get(f"/v1/runs/{api_ledger.demo.job}/bundle", headers=reader)
            none = client.get("/v1/runs/no-job/bundle", headers=reader)
            pulse = client.get("/v1/pulse/p1", headers=reader)
            samples = _samples(client.get("/metrics", headers=reader).text)
    assert authorizer.stopped
    assert allow.json() == {"allowed": True, "reason_code": "OK"}
    assert deny.json() == {"allowed": False, "reason_code": "AGENT_HALTED"}
    assert authorizer.calls == [{"job_id": "j1"}, {"job_id": "halted"}]
    decisions = {
        dict(labels)["outcome"] + "/" + dict(labels)["reason_code"]: v
        for (name, labels), v in samples.items()
        if name == "claw_ledger_authorize_decisions_total"
    }
    assert decisions == {"allow/OK": 1.0, "deny/AGENT_HALTED": 1.0}
    assert samples[("claw_ledger_authorize_latency_seconds_count", (("outcome", "deny"),))] == 1
    assert bundle.status_code == 200 and bundle.json()["events"] >= 4
    assert none.status_code == 404
    # no Trust Pulse source is wired into this app
    assert pulse.status_code == 503
    assert pulse.json()["error"]["reason_code"] == "API_NOT_ENABLED"


def test_a_ledger_with_signed_checkpoints_is_ready_and_shows_their_age(
    api_ledger: ApiLedger,
) -> None:
    """With the features `serve` wires and a signed checkpoint on the ledger (the
    demo's), /readyz said Postgres was down: the checkpoint's time came back as text
    from the latest-checkpoint document, and the probe failed on it."""
    from tests.fixtures_ledger import run_cli

    assert run_cli(api_ledger.harness.env, "checkpoint", "latest").returncode == 0
    features = replace(ledger_features(api_ledger.harness.settings, None), authorizer=None)
    with UvicornThread(create_app(config=_config(api_ledger, features=features))) as server:
        reader = {"Authorization": f"Bearer {api_ledger.keys['reader']}"}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ready = client.get("/readyz")
            samples = _samples(client.get("/metrics", headers=reader).text)
    assert ready.json()["checks"]["postgres"]["ok"] is True, ready.json()
    assert ready.status_code == 200, ready.json()
    assert samples[("claw_ledger_up", (("server", "postgres"),))] == 1
    assert samples[("claw_ledger_checkpoint_age_seconds", ())] >= 0
    status = json.loads(run_cli(api_ledger.harness.env, "status", "--json").stdout)
    assert status["checkpoint_age_seconds"] is not None and status["checkpoint_age_seconds"] >= 0


def test_status_prints_the_same_figures(api_ledger: ApiLedger) -> None:
    from tests.fixtures_ledger import run_cli

    result = run_cli(api_ledger.harness.env, "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["ready"] is True
    counts = asyncio.run(_database_counts(api_ledger))
    assert document["events_committed"] == dict(sorted(counts[0].items()))
    assert document["events_quarantined"] == dict(sorted(counts[1].items()))
    assert set(document["consumer_lag"]) == {"0", "1", "2", "3"}
    assert any(figures["batches"] >= 1 for figures in document["commit_batches"].values())
    text = run_cli(api_ledger.harness.env, "status")
    assert text.returncode == 0 and "ready: yes" in text.stdout
    assert "agent.halted" in text.stdout
    assert "batches committed" in text.stdout
    assert "; last beat " in text.stdout


def test_status_exits_1_when_kafka_does_not_answer(api_ledger: ApiLedger) -> None:
    from tests.fixtures_ledger import run_cli

    env = api_ledger.harness.env | {"CLAW_LEDGER_KAFKA": "127.0.0.1:1"}
    result = run_cli(env, "status", "--timeout", "2")
    assert result.returncode == 1
    assert "ready: NO" in result.stdout and "kafka" in result.stdout
