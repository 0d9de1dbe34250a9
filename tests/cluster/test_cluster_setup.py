"""The replicated cluster's layout, configs, records, CLI and compose profile (no servers)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from claw_ledger.cli import cli
from claw_ledger.config import DEFAULT_KAFKA_VERSION, effective_kafka_bootstrap, load_settings
from claw_ledger.services import kafka as kafka_mod
from claw_ledger.services.admin import replication_for
from claw_ledger.services.cluster import create_layout, load_layout, node_paths
from claw_ledger.services.manager import _wanted_layout, services_status
from ledger.errors import ConfigError
from tests.fixtures_ledger import unconfigured_cli_env

ROOT = Path(__file__).resolve().parents[2]
DEAD_PID = 2**22 + 4321


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_replication_follows_the_cluster_size(brokers: int, expected: tuple[int, int]) -> None:
    assert replication_for(brokers) == expected


def test_layout_is_recorded_once_with_distinct_ports(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "s", brokers=3, env={}, cwd=tmp_path)
    assert load_layout(settings) is None
    layout = create_layout(settings, 3)
    assert load_layout(settings) == layout
    ports = [p for n in layout.nodes for p in (n.port, n.controller_port)]
    assert len(set(ports)) == 6
    assert [n.node_id for n in layout.nodes] == [1, 2, 3]
    assert layout.bootstrap == ",".join(f"127.0.0.1:{n.port}" for n in layout.nodes)
    assert layout.voters == ",".join(
        f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in layout.nodes
    )
    assert layout.replication == (3, 2)
    assert node_paths(settings, 2).root == settings.state_dir / "kafka" / "node-2"
    with pytest.raises(ConfigError, match="no Kafka node 4"):
        layout.node(4)
    (settings.state_dir / "kafka" / "cluster.json").write_text("{")
    with pytest.raises(ConfigError, match="damaged"):
        load_layout(settings)


def test_node_config_names_the_quorum_and_replication(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "s", brokers=3, env={}, cwd=tmp_path)
    layout = create_layout(settings, 3)
    node = layout.node(3)
    text = kafka_mod._server_properties(
        settings,
        node_paths(settings, 3),
        node.port,
        node.controller_port,
        kafka_mod.Seat(node_id=3, voters=layout.voters, brokers=3),
    )
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert props["node.id"] == "3"
    assert props["controller.quorum.voters"] == layout.voters
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["listeners"] == (
        f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
    )
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert props[key] == "3"
    for key in ("min.insync.replicas", "transaction.state.log.min.isr"):
        assert props[key] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    single = kafka_mod._server_properties(settings, node_paths(settings, 1), 1, 2)
    single_props = dict(line.split("=", 1) for line in single.splitlines() if "=" in line)
    assert single_props["min.insync.replicas"] == "1"
    assert single_props["controller.quorum.bootstrap.servers"] == "127.0.0.1:2"


def test_a_recorded_cluster_is_kept_unless_resized(tmp_path: Path) -> None:
    base = {"state_dir": tmp_path / "s", "env": {}, "cwd": tmp_path}
    assert _wanted_layout(load_settings(**base), None) is None  # type: ignore[arg-type]
    layout = _wanted_layout(load_settings(brokers=3, **base), None)  # type: ignore[arg-type]
    assert layout is not None and len(layout.nodes) == 3
    # a later `services up` without --brokers finds the cluster
    assert _wanted_layout(load_settings(**base), None) == layout  # type: ignore[arg-type]
    assert _wanted_layout(load_settings(brokers=3, **base), None) == layout  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="3-node Kafka cluster") as info:
        _wanted_layout(load_settings(brokers=1, **base), None)  # type: ignore[arg-type]
    assert info.value.hint and "--brokers 3" in info.value.hint
    env_sized = load_settings(state_dir=tmp_path / "s", env={"CLAW_LEDGER_BROKERS": "5"})
    with pytest.raises(ConfigError, match="cannot reshape"):
        _wanted_layout(env_sized, None)


def test_cluster_record_counts_as_running_while_any_node_runs(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "s", env={}, cwd=tmp_path)
    settings.state_dir.mkdir()

    def record(pids: list[int]) -> None:
        nodes = [{"node_id": i + 1, "pid": pid} for i, pid in enumerate(pids)]
        kafka = {"managed": True, "bootstrap": "127.0.0.1:1,127.0.0.1:2", "nodes": nodes}
        settings.services_file.write_text(json.dumps({"kafka": kafka}))

    record([DEAD_PID, os.getpid()])
    assert effective_kafka_bootstrap(settings) == "127.0.0.1:1,127.0.0.1:2"
    record([DEAD_PID, DEAD_PID + 1])
    with pytest.raises(ConfigError, match="services up"):
        effective_kafka_bootstrap(settings)


def test_status_of_a_stopped_cluster_lists_each_node(tmp_path: Path) -> None:
    settings = load_settings(
        state_dir=tmp_path / "s",
        database_url="postgresql://u@127.0.0.1:9/none",
        env={},
        cwd=tmp_path,
    )
    layout = create_layout(settings, 3)
    status = services_status(settings)
    kafka = next(s for s in status.services if s.name == "kafka")
    assert (kafka.state, kafka.endpoint, status.all_up) == ("down", layout.bootstrap, False)
    assert [(n.node_id, n.state, n.pid) for n in status.kafka_nodes] == [
        (1, "down", None),
        (2, "down", None),
        (3, "down", None),
    ]
    document = status.to_json()
    assert [n["port"] for n in document["kafka_nodes"]] == [n.port for n in layout.nodes]


def _cli_env(tmp_path: Path) -> dict[str, str | None]:
    return {
        **unconfigured_cli_env(tmp_path / "state"),
        "CLAW_LEDGER_DATABASE_URL": "postgresql://u@127.0.0.1:9/none",
        "CLAW_LEDGER_BROKERS": None,
    }


def test_node_commands_need_a_cluster_and_are_documented(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _cli_env(tmp_path)
    for action in ("start", "stop", "kill"):
        result = runner.invoke(cli, ["services", "node", action, "1"], env=env)
        assert result.exit_code == 2, result.output
        assert "no Kafka cluster" in result.output
    help_text = runner.invoke(cli, ["services", "node", "--help"], env=env).output
    for example in ("services node stop 2", "services node kill 1", "services node start 1"):
        assert example in help_text
    assert "--brokers" in runner.invoke(cli, ["services", "up", "--help"], env=env).output
    assert "--brokers" in runner.invoke(cli, ["up", "--help"], env=env).output
    bad = runner.invoke(cli, ["services", "up", "--brokers", "0"], env=env)
    assert bad.exit_code == 2 and "--brokers" in bad.output


def test_stopping_a_node_of_a_stopped_cluster_says_so(tmp_path: Path) -> None:
    runner = CliRunner()
    env = _cli_env(tmp_path)
    settings = load_settings(state_dir=tmp_path / "state", env={}, cwd=tmp_path)
    create_layout(settings, 3)
    result = runner.invoke(cli, ["services", "node", "kill", "2", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"node_id": 2, "pid": None, "was_running": False}
    result = runner.invoke(cli, ["services", "node", "stop", "7"], env=env)
    assert result.exit_code == 2 and "no Kafka node 7" in result.output


# ---------------------------------------------------------------- compose profile


def _compose_blocks(text: str) -> dict[str, str]:
    """Top-level keys and the services of compose.yaml, each with its indented block.

    A deliberately small reader: PyYAML is not a dependency of the project.
    """
    blocks: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        top = re.match(r"^([A-Za-z][\w.-]*):", line)
        service = re.match(r"^  ([A-Za-z][\w.-]*):\s*(#.*)?$", line)
        if top:
            current = top.group(1)
            blocks[current] = ""
        elif (service and current == "services") or (
            service and current and current.startswith("services/")
        ):
            current = "services/" + service.group(1)
            blocks[current] = ""
        elif current:
            blocks[current] += line + "\n"
    return blocks


def _env(block: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2).split(" #")[0].strip().strip('"')
        for m in re.finditer(r"^\s+([A-Z][A-Z0-9_]+): (.+)$", block, re.M)
    }


def test_compose_cluster_profile_is_consistent() -> None:
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        yaml = None
    if yaml is not None:  # pragma: no cover - PyYAML is not installed in the project venv
        assert "kafka-1" in yaml.safe_load(text)["services"]
    assert "\t" not in text
    blocks = _compose_blocks(text)
    shared = _env(blocks["x-kafka-cluster-env"])
    node_tmpl = blocks["x-kafka-cluster-node"]
    assert f"image: apache/kafka:{DEFAULT_KAFKA_VERSION}" in node_tmpl
    assert "profiles: [cluster]" in node_tmpl
    assert shared["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert shared["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    )
    for key in (
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ):
        assert shared[key] == "3", key
    for key in ("KAFKA_MIN_INSYNC_REPLICAS", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert shared[key] == "2", key
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", shared["CLUSTER_ID"])
    host_ports = set()
    for n in (1, 2, 3):
        block = blocks[f"services/kafka-{n}"]
        env = _env(block)
        assert "<<: *kafka-cluster-node" in block and "<<: *kafka-cluster-env" in block
        assert env["KAFKA_NODE_ID"] == str(n)
        host_port = re.search(r"HOST://:(\d+)", env["KAFKA_LISTENERS"])
        assert host_port is not None
        host_ports.add(host_port.group(1))
        assert env["KAFKA_ADVERTISED_LISTENERS"] == (
            f"PLAINTEXT://kafka-{n}:9092,HOST://localhost:{host_port.group(1)}"
        )
        assert f'"{host_port.group(1)}:{host_port.group(1)}"' in block
        assert f"kafka-{n}-data:/var/lib/kafka/data" in block
        assert f"  kafka-{n}-data:" in blocks["volumes"]
    assert len(host_ports) == 3
    for name in ("migrate-cluster", "ledger-cluster"):
        block = blocks[f"services/{name}"]
        assert "profiles: [cluster]" in block
        for n in (1, 2, 3):
            assert f"kafka-{n}:\n        condition: service_healthy" in block
    ledger_env = _env(blocks["services/migrate-cluster"])
    assert ledger_env["CLAW_LEDGER_KAFKA"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    # the single-node stack stays the default: no profile on its services
    for name in ("kafka", "postgres", "migrate", "ledger"):
        assert "profiles:" not in blocks[f"services/{name}"], name


def test_status_table_groups_partitions_by_topic() -> None:
    from claw_ledger.cli.services import _partitions

    names = ("claw.ingress-0", "claw.ingress-2", "claw.verified-1", "drill-x-3")
    assert _partitions(names) == "ingress 0,2\nverified 1\ndrill-x 3"
    assert _partitions(()) == "-"


def test_probes_drop_only_the_connection_errors_of_down_nodes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from claw_ledger.services.admin import _quiet_down_nodes

    logger = logging.getLogger("aiokafka")
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        with _quiet_down_nodes():
            logger.error("Unable connect to node with id %s: %s", 2, "refused")
            logger.error("something else")
        logger.error("Unable connect to node with id %s: %s", 3, "refused")
    assert [r.getMessage() for r in caplog.records] == [
        "something else",
        "Unable connect to node with id 3: refused",
    ]
