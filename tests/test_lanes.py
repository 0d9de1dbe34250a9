"""The control lane's configuration and routing rules (ADR 0024), without servers."""

from __future__ import annotations

import pytest

from consumers.config import ProcessorConfig, control_topic_for, parse_lanes
from ledger.crypto import KeyPair
from ledger.errors import ConfigError
from ledger.tlog import CONTROL_CHAIN_BASE, chain_number
from ledger.topics import topic_names
from ledger.types import REGISTRY
from producers.sdk import NewEvent, lane_of_envelope, sign_many


def _config(**kw: object) -> ProcessorConfig:
    base: dict[str, object] = {
        "kafka_bootstrap": "127.0.0.1:1",
        "database_url": "postgresql://nobody@127.0.0.1:1/none",
        "ingress_topic": "acme.ingress",
        "verified_topic": "acme.verified",
        "quarantine_topic": "acme.quarantine",
    }
    return ProcessorConfig(**(base | kw))  # type: ignore[arg-type]


def test_a_processor_runs_both_lanes_by_default_on_the_prefix_control_topic() -> None:
    config = _config()
    assert config.lanes == ("control", "ingress")
    assert config.control_topic == "acme.control"
    assert config.topic_of("control") == "acme.control"
    assert config.topic_of("ingress") == "acme.ingress"
    assert _config(lanes=("ingress", "control", "ingress")).lanes == ("control", "ingress")


@pytest.mark.parametrize(
    "kw",
    [
        {"lanes": ()},
        {"lanes": ("bulk",)},
        {"control_topic": "acme.ingress"},
        {"control_topic": "acme.urgent"},
    ],
)
def test_lanes_and_control_topics_that_cannot_run_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        _config(**kw)


def test_lanes_parse_from_the_command_line() -> None:
    assert parse_lanes("ingress, control") == ("control", "ingress")
    assert parse_lanes("control") == ("control",)
    for text in ("", "bulk", "control,bulk"):
        with pytest.raises(ConfigError):
            parse_lanes(text)
    assert control_topic_for("acme.ingress") == "acme.control"
    assert control_topic_for("events") == "events.control"


def test_control_types_route_to_the_control_topic_and_raw_bytes_by_their_type() -> None:
    control = {spec.event_type for spec in REGISTRY if spec.lane == "control"}
    assert control == {
        "key.revoked",
        "policy.revoked",
        "token.revoked",
        "agent.halted",
        "agent.resumed",
    }
    topics = topic_names("acme")
    assert topics.for_lane(REGISTRY["agent.halted"].lane) == "acme.control"
    key = KeyPair.generate("operator")
    [halt, attested] = sign_many(
        key,
        [
            NewEvent("agent.halted", "halt:*", {"target": "*", "reason": "x"}),
            NewEvent(
                "policy.attested",
                "openclaw-policy:x",
                {
                    "ok": True,
                    "policy_hash": None,
                    "workspace_hash": "w",
                    "findings_hash": "f",
                    "attestation_hash": "a",
                    "checked_at": "2026-11-30T00:00:00.000Z",
                    "policy_path": "p",
                    "findings_count": 0,
                },
            ),
        ],
    )
    assert (halt.event_type, attested.event_type) == ("agent.halted", "policy.attested")
    assert lane_of_envelope(halt.value) == "control"
    assert lane_of_envelope(attested.value) == "ingress"
    for junk in (b"", b"not json", b"[]", b'{"payload": {"event_type": "nope.nope"}}'):
        assert lane_of_envelope(junk) == "ingress"


def test_a_control_lane_chain_has_a_leaf_number_of_its_own() -> None:
    assert chain_number("ingress", 3) == 3
    assert chain_number("control", 3) == CONTROL_CHAIN_BASE + 3
    assert chain_number("control", 0) != chain_number("ingress", 0)
