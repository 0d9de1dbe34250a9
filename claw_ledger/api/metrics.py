"""``GET /metrics``: the ledger's figures in the Prometheus text format.

The database and Kafka figures are read at scrape time
(:func:`claw_ledger.ledger_health.take_snapshot`) and rendered by a custom
collector; what the service itself measures (authorize decisions and their
latency) are ordinary prometheus-client metrics of the same registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from claw_ledger.ledger_health import Snapshot

__all__ = ["ApiMetrics"]

#: authorize latency buckets, seconds: the decision is on the agent's hot path
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _counter_by(
    name: str, documentation: str, label: str, counts: Mapping[str, int]
) -> CounterMetricFamily:
    """A counter with a sample per entry of ``counts``, its key as ``label``, in key order."""
    family = CounterMetricFamily(name, documentation, labels=[label])
    for value, count in sorted(counts.items()):
        family.add_metric([value], count)
    return family


def _gauge_by_partition(
    name: str, documentation: str, *topics: tuple[str, Mapping[int, float]]
) -> GaugeMetricFamily:
    """A gauge with a sample per (topic, partition) of each topic's figures, in partition order."""
    family = GaugeMetricFamily(name, documentation, labels=["topic", "partition"])
    for topic, figures in topics:
        for partition, figure in sorted(figures.items()):
            family.add_metric([topic, str(partition)], figure)
    return family


class _LedgerCollector(Collector):
    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        snap = self.metrics.snapshot
        up = GaugeMetricFamily("claw_ledger_up", "1 when the server answers", labels=["server"])
        up.add_metric(["postgres"], 1.0 if snap.postgres_up else 0.0)
        up.add_metric(["kafka"], 1.0 if snap.kafka_up else 0.0)
        yield up
        if not snap.postgres_up:
            return  # absent, never stale or guessed
        yield _counter_by(
            "claw_ledger_events_committed",
            "Events committed to the ledger, by event type",
            "event_type",
            snap.events,
        )
        yield _counter_by(
            "claw_ledger_events_quarantined",
            "Messages the processors refused, by reason code",
            "reason_code",
            snap.quarantined,
        )
        if snap.lag is not None:
            yield _gauge_by_partition(
                "claw_ledger_consumer_lag",
                "Messages not yet committed by the processors, per topic and partition",
                (snap.topic, snap.lag),
                (snap.control_topic, snap.control_lag or {}),
            )
        yield _gauge_by_partition(
            "claw_ledger_last_commit_timestamp_seconds",
            "Unix time of the processors' last commit, per partition",
            (snap.topic, snap.last_commit),
        )
        if snap.active_halts is not None:
            yield GaugeMetricFamily(
                "claw_ledger_active_halts", "Halts in force", value=snap.active_halts
            )
        if snap.halt_propagation is not None:
            yield GaugeMetricFamily(
                "claw_ledger_halt_propagation_seconds",
                "The newest agent.halted: seconds from its occurred_at to its commit",
                value=snap.halt_propagation,
            )
        if snap.commit_batches:
            batches = SummaryMetricFamily(
                "claw_ledger_commit_batch_seconds",
                "Processor batches committed and their time (decide + commit transaction)",
                labels=["worker"],
            )
            longest = GaugeMetricFamily(
                "claw_ledger_commit_batch_max_seconds",
                "The longest batch commit since the processor's previous heartbeat",
                labels=["worker"],
            )
            beat_age = GaugeMetricFamily(
                "claw_ledger_processor_beat_age_seconds",
                "Seconds since the processor's last heartbeat (it beats every 0.5 s;"
                " processors silent for 5 minutes are left out)",
                labels=["worker"],
            )
            for worker, figures in sorted(snap.commit_batches.items()):
                batches.add_metric([worker], figures["batches"], figures["seconds_sum"])
                if figures["seconds_max"] is not None:
                    longest.add_metric([worker], figures["seconds_max"])
                beat_age.add_metric([worker], figures["last_beat_seconds"])
            yield batches
            yield longest
            yield beat_age
        if snap.checkpoint_age is not None:
            yield GaugeMetricFamily(
                "claw_ledger_checkpoint_age_seconds",
                "Seconds since the newest signed checkpoint",
                value=snap.checkpoint_age,
            )


class ApiMetrics:
    """The service's registry: the ledger collector and the authorize figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.snapshot = Snapshot()
        self.registry.register(_LedgerCollector(self))
        self.authorize_decisions = Counter(
            "claw_ledger_authorize_decisions",
            "Authorization decisions, by outcome (allow or deny) and reason code",
            ["outcome", "reason_code"],
            registry=self.registry,
        )
        self.authorize_latency = Histogram(
            "claw_ledger_authorize_latency_seconds",
            "Time to decide one authorization request",
            ["outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
