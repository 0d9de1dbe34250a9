"""Real servers, started by the project: settings, services lifecycle, Kafka, database fixtures."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner

from claw_ledger.cli import cli
from claw_ledger.config import (
    DEFAULT_KAFKA_VERSION,
    Endpoints,
    effective_database_url,
    effective_endpoints,
    load_settings,
)
from claw_ledger.services.kafka import ensure_topics
from claw_ledger.services.manager import services_status, services_up
from claw_ledger.services.process import pid_alive
from ledger.errors import ConfigError
from ledger.topics import INGRESS, QUARANTINE, VERIFIED, topic_names
from storage import connect
from storage.migrate import check_schema, discover_migrations
from tests.fixtures_ledger import unconfigured_cli_env

# ---------------------------------------------------------------- settings (no servers)


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert settings.state_dir == tmp_path.resolve() / ".claw-ledger"
    assert settings.cache_dir == tmp_path / ".cache" / "claw-ledger"
    assert settings.kafka_bootstrap is None and settings.database_url is None
    assert (settings.kafka_version, settings.topic_prefix, settings.partitions) == (
        DEFAULT_KAFKA_VERSION,
        "claw",
        4,
    )
    assert set(settings.sources.values()) == {"default"}


def test_precedence_flag_env_file_default(tmp_path: Path) -> None:
    (tmp_path / "claw-ledger.toml").write_text(
        'topic_prefix = "fromfile"\npartitions = 7\nstate_dir = "st"\n'
        'kafka_bootstrap = "file:9092"\n'
    )
    env = {"CLAW_LEDGER_TOPIC_PREFIX": "fromenv", "CLAW_LEDGER_PARTITIONS": "5"}
    settings = load_settings(partitions=9, env=env, cwd=tmp_path)
    assert settings.partitions == 9  # flag beats env and file
    assert settings.topic_prefix == "fromenv"  # env beats file
    assert settings.state_dir == tmp_path.resolve() / "st"  # file beats default
    assert settings.kafka_bootstrap == "file:9092"
    assert settings.kafka_version == DEFAULT_KAFKA_VERSION  # default
    assert settings.sources["partitions"] == "flag"
    assert settings.sources["topic_prefix"] == "env"
    assert settings.sources["state_dir"] == "file"
    assert settings.sources["kafka_version"] == "default"


def test_config_file_from_env_and_table(tmp_path: Path) -> None:
    conf = tmp_path / "elsewhere" / "my.toml"
    conf.parent.mkdir()
    conf.write_text('[claw-ledger]\ndatabase_url = "postgresql://u@h:5/d"\ncache_dir = "c"\n')
    settings = load_settings(env={"CLAW_LEDGER_CONFIG": str(conf)}, cwd=tmp_path)
    assert settings.database_url == "postgresql://u@h:5/d"
    assert settings.cache_dir == conf.parent / "c"  # relative to the file
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"CLAW_LEDGER_CONFIG": str(tmp_path / "nope.toml")}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense = 1\n", "unknown key"),
        ("partitions = 0\n", "partitions"),
        ('partitions = "x"\n', "partitions"),
        ('database_url = "mysql://x"\n', "postgresql://"),
        ('topic_prefix = "a b"\n', "topic_prefix"),
        ("partitions = [\n", "cannot read"),
    ],
)
def test_bad_config_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "claw-ledger.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(env={}, cwd=tmp_path)


def test_endpoints_need_services_up(tmp_path: Path) -> None:
    settings = load_settings(env={}, cwd=tmp_path)
    with pytest.raises(ConfigError) as info:
        effective_endpoints(settings)
    assert "claw-ledger services up" in str(info.value)
    # a record whose pids are dead does not count
    settings.state_dir.mkdir()
    settings.services_file.write_text(
        json.dumps(
            {
                "kafka": {"bootstrap": "127.0.0.1:1", "pid": 2**22 + 12345},
                "postgres": {"url": "postgresql://p@127.0.0.1:1/x", "pid": 2**22 + 12346},
            }
        )
    )
    with pytest.raises(ConfigError, match="services up"):
        effective_database_url(settings)


def test_given_endpoints_start_nothing(tmp_path: Path) -> None:
    env = {"CLAW_LEDGER_KAFKA": "127.0.0.1:1", "CLAW_LEDGER_DATABASE_URL": "postgresql://p@x:1/d"}
    settings = load_settings(env=env, cwd=tmp_path)
    started = time.monotonic()
    endpoints = services_up(settings)
    assert time.monotonic() - started < 1.0
    assert endpoints == Endpoints("127.0.0.1:1", "postgresql://p@x:1/d")
    assert effective_endpoints(settings) == endpoints
    assert not settings.state_dir.exists()  # nothing written, nothing started
    # and through the CLI
    result = CliRunner().invoke(
        cli,
        ["services", "up", "--json"],
        env={**env, "CLAW_LEDGER_STATE_DIR": str(tmp_path / "s"), "CLAW_LEDGER_CONFIG": None},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["env"] == {
        "CLAW_LEDGER_KAFKA": "127.0.0.1:1",
        "CLAW_LEDGER_DATABASE_URL": "postgresql://p@x:1/d",
    }
    assert not (tmp_path / "s").exists()


def test_services_output_shows_paths_and_urls_verbatim(tmp_path: Path) -> None:
    """A state dir or a URL is printed as it is: ``[/x]`` is not markup, ``:key:``
    not an emoji (rich read both, and the first stopped the command)."""
    state_dir = tmp_path / "odd[/x]:key:"
    url = "postgresql://p:[/pw]:key:@x:1/d"
    env = {
        "CLAW_LEDGER_KAFKA": "127.0.0.1:1",
        "CLAW_LEDGER_DATABASE_URL": url,
        "CLAW_LEDGER_STATE_DIR": str(state_dir),
        "CLAW_LEDGER_CONFIG": None,
        "COLUMNS": "500",
    }
    up = CliRunner().invoke(cli, ["services", "up"], env=env)
    assert up.exit_code == 0, up.output
    assert f"  postgres  {url}\n" in up.output

    status = CliRunner().invoke(cli, ["services", "status"], env=env)
    assert status.exit_code == 1, status.output  # nothing of its own is running
    title = "".join(status.output.split())  # a title wraps within the table's width
    assert f"({state_dir})" in title
    assert "🔑" not in up.output + status.output


def test_topic_names() -> None:
    topics = topic_names("acme")
    assert topics.all == ("acme.ingress", "acme.verified", "acme.quarantine", "acme.control")
    assert topics.for_lane("control") == "acme.control"
    assert topics.for_lane("ingress") == "acme.ingress"
    with pytest.raises(ValueError, match="lane"):
        topics.for_lane("bulk")
    assert (INGRESS, VERIFIED, QUARANTINE) == ("claw.ingress", "claw.verified", "claw.quarantine")


# ---------------------------------------------------------------- services lifecycle


@pytest.mark.integration
def test_services_lifecycle_through_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    env = unconfigured_cli_env(tmp_path / "state")

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        result = runner.invoke(cli, ["services", *args, "--json"], env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return result.exit_code, json.loads(result.stdout)

    code, status = run("status")
    assert code == 1 and status["all_up"] is False

    code, up = run("up")
    assert code == 0, up
    kafka, database = str(up["kafka_bootstrap"]), str(up["database_url"])
    env_vars = up["env"]
    assert isinstance(env_vars, dict)
    assert (env_vars["CLAW_LEDGER_KAFKA"], env_vars["CLAW_LEDGER_DATABASE_URL"]) == (
        kafka,
        database,
    )
    # the processor's and the queries' own roles (ADR 0013)
    assert sorted(env_vars) == sorted(
        f"CLAW_LEDGER_{name}" for name in ("KAFKA", "DATABASE_URL", "WRITER_URL", "READER_URL")
    )
    record = json.loads((tmp_path / "state" / "services.json").read_text())
    pids = [record["kafka"]["pid"], record["postgres"]["pid"]]
    assert all(pid_alive(pid) for pid in pids)
    settings = load_settings(state_dir=tmp_path / "state", env={}, cwd=tmp_path)
    assert effective_endpoints(settings) == Endpoints(kafka, database)

    # idempotent: a second `up` reuses the running servers at once
    started = time.monotonic()
    code, again = run("up")
    assert code == 0 and time.monotonic() - started < 10
    assert (again["kafka_bootstrap"], again["database_url"]) == (kafka, database)
    record = json.loads((tmp_path / "state" / "services.json").read_text())
    assert [record["kafka"]["pid"], record["postgres"]["pid"]] == pids

    code, status = run("status")
    assert code == 0 and status["all_up"] is True
    assert {s["name"]: s["state"] for s in status["services"]} == {"kafka": "up", "postgres": "up"}
    human = runner.invoke(cli, ["services", "status"], env=env)
    assert human.exit_code == 0 and "kafka" in human.output and "postgres" in human.output

    # the ledger database and topics exist
    async def check() -> None:
        conn = await connect(database)
        try:
            assert await conn.fetchval("SELECT current_database()") == "claw_ledger"
        finally:
            await conn.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            assert set(topic_names().all) <= set(await admin.list_topics())
        finally:
            await admin.close()

    asyncio.run(check())

    code, down = run("down")
    assert code == 0 and sorted(down["stopped"]) == ["kafka", "postgres"]
    assert not any(pid_alive(pid) for pid in pids)
    code, status = run("status")
    assert code == 1 and {s["state"] for s in status["services"]} == {"down"}
    code, down = run("down")
    assert code == 0 and down["stopped"] == []
    with pytest.raises(ConfigError, match="services up"):
        effective_endpoints(settings)


@pytest.mark.integration
def test_status_of_given_endpoints(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, database_url=database_url, env={}, cwd=tmp_path
    )
    status = services_status(settings)
    assert status.all_up
    assert {s.state for s in status.services} == {"external"}
    bad = load_settings(
        kafka_bootstrap="127.0.0.1:9", database_url=database_url, env={}, cwd=tmp_path
    )
    status = services_status(bad)
    assert not status.all_up
    assert [s.state for s in status.services] == ["unreachable", "external"]


# ---------------------------------------------------------------- real Kafka


@pytest.mark.integration
async def test_ensure_topics_is_idempotent(kafka_bootstrap: str) -> None:
    names = [f"it-{uuid.uuid4().hex[:8]}.a", f"it-{uuid.uuid4().hex[:8]}.b"]
    assert sorted(await ensure_topics(kafka_bootstrap, names, 3)) == sorted(names)
    assert await ensure_topics(kafka_bootstrap, names, 3) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == dict.fromkeys(names, 3)
    assert all(p["leader"] >= 0 for t in described for p in t["partitions"])


@pytest.mark.integration
async def test_a_producer_started_right_after_ensure_topics_is_not_refused(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ensure_topics returns once the new partitions have leaders: a first send to
    each is accepted as it is, not answered NOT_LEADER_OR_FOLLOWER and retried."""
    topic = f"it-{uuid.uuid4().hex[:8]}.fresh"
    assert await ensure_topics(kafka_bootstrap, [topic], 8) == [topic]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        with caplog.at_level("WARNING", logger="aiokafka"):
            for partition in range(8):
                await producer.send_and_wait(topic, b"first", partition=partition)
    finally:
        await producer.stop()
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retried == []


@pytest.mark.integration
async def test_produce_consume_round_trip(ledger_settings: object) -> None:
    from claw_ledger.config import Settings

    assert isinstance(ledger_settings, Settings)
    bootstrap = ledger_settings.kafka_bootstrap
    assert bootstrap is not None
    topic = topic_names(ledger_settings.topic_prefix).ingress
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    sent: dict[bytes, list[bytes]] = {}
    try:
        for i in range(60):
            key = f"stream-{i % 6}".encode()
            value = f"event-{i}".encode()
            await producer.send(topic, value, key=key)
            sent.setdefault(key, []).append(value)
        await producer.flush()
    finally:
        await producer.stop()

    # an aborted transaction is invisible to read_committed consumers
    tx = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        transactional_id=f"tx-{uuid.uuid4().hex[:8]}",
    )
    await tx.start()
    try:
        await tx.begin_transaction()
        await tx.send_and_wait(topic, b"aborted", key=b"stream-0")
        await tx.abort_transaction()
    finally:
        await tx.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: dict[bytes, list[bytes]] = {}
    try:
        async with asyncio.timeout(60):
            while sum(map(len, received.values())) < 60:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    for message in messages:
                        assert message.key is not None and message.value is not None
                        received.setdefault(message.key, []).append(message.value)
        await consumer.commit()
        extra = await consumer.getmany(timeout_ms=1500)
        assert not any(extra.values())
    finally:
        await consumer.stop()
    assert received == sent  # everything, once, in order per key; nothing aborted


# ---------------------------------------------------------------- database fixtures


@pytest.mark.integration
async def test_session_database_is_migrated(database_url: str) -> None:
    newest = discover_migrations()[-1].version if discover_migrations() else 0
    assert await check_schema(database_url) == newest


@pytest.mark.integration
async def test_fresh_databases_are_separate_and_migrated(
    fresh_database: str, database_url: str
) -> None:
    assert fresh_database != database_url
    assert await check_schema(fresh_database) == await check_schema(database_url)
    conn = await connect(fresh_database)
    try:
        await conn.execute("CREATE TABLE scratch (x int)")
    finally:
        await conn.close()
    with pytest.raises(asyncpg.UndefinedTableError):
        conn = await connect(database_url)
        try:
            await conn.fetch("SELECT * FROM scratch")
        finally:
            await conn.close()


# ---------------------------------------------------------------- failures are clear


def test_missing_java_or_maven_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from claw_ledger.services.kafka import ensure_kafka_jars

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    settings = load_settings(cache_dir=tmp_path / "cache", env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="`java` was not found"):
        ensure_kafka_jars(settings)
    java = bin_dir / "java"
    java.write_text("#!/bin/sh\nexit 0\n")
    java.chmod(0o755)
    with pytest.raises(ConfigError, match="`mvn` was not found") as info:
        ensure_kafka_jars(settings)
    assert info.value.hint and "--kafka" in info.value.hint


@pytest.mark.integration
def test_broker_failure_reports_its_log_and_stops_the_rest(tmp_path: Path) -> None:
    from claw_ledger.services.postgres import running_postgres
    from ledger.errors import ServiceError

    settings = load_settings(state_dir=tmp_path / "state", env={}, cwd=tmp_path)
    data = settings.state_dir / "kafka" / "data"
    data.mkdir(parents=True)
    # storage "formatted" for another node: the broker refuses to start
    (data / "meta.properties").write_text(
        "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=99\n"
        "directory.id=AAAAAAAAAAAAAAAAAAAAAA\n"
    )
    with pytest.raises(ServiceError) as info:
        services_up(settings)
    text = str(info.value)
    assert "Kafka broker" in text and "last lines of" in text
    assert info.value.hint and "broker.log" in info.value.hint
    assert running_postgres(settings) is None  # what this `up` started was stopped again
    assert not settings.services_file.exists()


@pytest.mark.integration
def test_database_failure_stops_the_started_broker_and_leaves_no_pending_wait(
    tmp_path: Path,
) -> None:
    from ledger.errors import ServiceError

    settings = load_settings(state_dir=tmp_path / "state", env={}, cwd=tmp_path)
    data = settings.state_dir / "postgres"
    data.mkdir(parents=True)
    # a data directory of a server version that does not exist: pg_ctl refuses it
    (data / "PG_VERSION").write_text("99\n")
    # with warnings as errors, a readiness wait created but never awaited fails the test
    with pytest.raises(ServiceError) as info:
        services_up(settings)
    assert "PostgreSQL" in str(info.value) or "pg_ctl" in str(info.value)
    assert (settings.state_dir / "kafka" / "broker.log").exists()  # a broker was started
    assert not _processes_under(settings.state_dir)  # and stopped again
    assert not settings.services_file.exists()


def _processes_under(state_dir: Path) -> list[int]:
    """Pids of the processes whose command line names ``state_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(state_dir).encode() in cmdline:
                pids.append(int(entry.name))
    return pids


@pytest.mark.integration
def test_topics_cli(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    args = ["services", "topics", "--kafka", kafka_bootstrap, "--topic-prefix", prefix, "--json"]
    env = {"CLAW_LEDGER_CONFIG": None, "CLAW_LEDGER_STATE_DIR": str(tmp_path)}
    first = CliRunner().invoke(cli, args, env=env)
    assert first.exit_code == 0, first.output
    assert sorted(json.loads(first.stdout)["created"]) == sorted(topic_names(prefix).all)
    second = CliRunner().invoke(cli, args, env=env)
    assert json.loads(second.stdout)["created"] == []


# ---------------------------------------------------------------- Kafka nodes (brokers)


def test_brokers_setting_follows_the_precedence(tmp_path: Path) -> None:
    assert load_settings(env={}, cwd=tmp_path).brokers == 1
    (tmp_path / "claw-ledger.toml").write_text("brokers = 2\n")
    assert load_settings(env={}, cwd=tmp_path).brokers == 2
    env = {"CLAW_LEDGER_BROKERS": "3"}
    settings = load_settings(env=env, cwd=tmp_path)
    assert (settings.brokers, settings.sources["brokers"]) == (3, "env")
    settings = load_settings(brokers=1, env=env, cwd=tmp_path)
    assert (settings.brokers, settings.sources["brokers"]) == (1, "flag")
    for bad in ("0", "three", "99"):
        with pytest.raises(ConfigError, match="brokers from \\$CLAW_LEDGER_BROKERS"):
            load_settings(env={"CLAW_LEDGER_BROKERS": bad}, cwd=tmp_path)
