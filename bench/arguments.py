"""The command line of ``python -m bench``: the rows' sizes and durations, and the parser.

Every size or duration is a flag of its own whose value parses as its default's
type; ``--only latency`` sets those of the rows the latency figures do not need
to 0.
"""

from __future__ import annotations

import argparse

__all__ = ["parse_arguments"]

#: the sizes and durations of the rows as (flag, default, help), in --help order; each
#: flag parses its value as its default's type
_SIZES: tuple[tuple[str, float | str, str | None], ...] = (
    ("--warm-up-events", 50_000, None),
    ("--events", 200_000, None),
    ("--repeat", 3, "end-to-end runs (median reported)"),
    ("--rss-events", 1_000_000, None),
    (
        "--latency-seconds",
        30.0,
        "length of each paced run at 25/50/75 %% of the e2e capacity (0 to skip)",
    ),
    ("--latency-repeat", 1, "paced runs per load (median p99 reported)"),
    ("--checkpoint-events", 100_000, "ingest with/without checkpointer"),
    ("--proof-leaves", 1_000_000, "proofs from Postgres"),
    (
        "--control-cache-tokens",
        "10000,1000000",
        "two ledger sizes (active tokens) for the processor's start, RSS and ingest; empty to skip",
    ),
    ("--control-cache-events", 20_000, None),
    ("--api-events", 1_000_000, None),
    ("--lane-events", 200_000, "control lane rows: ingest with and without it (0: skip)"),
    ("--lane-backlog", 200_000, None),
    ("--lane-control-events", 20, None),
    ("--capacity-events", 50_000, "events per capacity-model run"),
    ("--authorize-http-seconds", 10.0, "seconds per paced rate of POST /v1/authorize; 0 to skip"),
    (
        "--decisions-ingest-events",
        50_000,
        "events ingested alone and beside 1,000 decisions/s; 0 to skip",
    ),
    ("--early-trials", 100, "halt/revocation → first deny trials"),
    ("--early-backlog", 200_000, "ingress events queued ahead of them"),
    (
        "--simulate-decisions",
        1_000_000,
        "recorded decisions the simulate rows judge (the issue's figure: 1,000,000)",
    ),
    ("--processors", 2, None),
    ("--partitions", 4, None),
    ("--replay-events", 200_000, "the replay rates (no database)"),
    ("--replay-rss-events", 1_000_000, "the replay's memory run"),
)


def parse_arguments(description: str) -> argparse.Namespace:
    """The arguments of this command line; ``description`` heads ``--help``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=description)
    for flag, default, help_text in _SIZES:
        parser.add_argument(flag, type=type(default), default=default, help=help_text)
    parser.add_argument(
        "--only",
        choices=["replay", "latency"],
        help="run these rows alone and write nothing: replay (no servers), or latency"
        " (warm-up, the e2e capacity runs and the latency rows at 25/50/75 %% of it)",
    )
    parser.add_argument(
        "--servers-from-env",
        action="store_true",
        help="measure on the Kafka and Postgres of $CLAW_LEDGER_KAFKA and"
        " $CLAW_LEDGER_DATABASE_URL instead of starting servers of its own",
    )
    parser.add_argument("--rss", action="store_true", help="with --only replay: the memory run too")
    arguments = parser.parse_args()
    if arguments.only == "latency":
        # only the rows the latency figures need: the e2e runs measure the capacity
        arguments.checkpoint_events = arguments.proof_leaves = arguments.rss_events = 0
        arguments.capacity_events = arguments.api_events = arguments.lane_events = 0
        arguments.authorize_http_seconds = arguments.early_trials = 0
        arguments.control_cache_tokens = ""
    return arguments
