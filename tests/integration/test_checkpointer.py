"""The checkpointer over real events (a real processor, Kafka and Postgres):
rounds, SIGKILL and restart, proofs verified offline, one instance per ledger,
the monitor catching a forged checkpoint and the audit catching a changed node."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto import KeyPair
from ledger.merkle import MerkleTree
from ledger.roles import Role
from ledger.tlog import EventLeaf, chain_number
from tests.fixtures_ledger import (
    CLAW_LEDGER,
    LedgerHarness,
    send_halts,
    start_ledger,
    started_ledger,
)
from tests.fixtures_ledger import run_cli as _cli

pytestmark = pytest.mark.integration


def _checkpointer(ledger: LedgerHarness, *args: str) -> subprocess.Popen[bytes]:
    log = (ledger.settings.state_dir / "checkpointer.log").open("ab")
    try:
        return subprocess.Popen(
            [*CLAW_LEDGER, "checkpointer", "run", "--key", "ledger", *args],
            env=ledger.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        log.close()


def _once(ledger: LedgerHarness) -> dict[str, Any] | None:
    result = _cli(ledger.env, "checkpointer", "run", "--key", "ledger", "--once", "--json")
    assert result.returncode == 0, result.stderr
    checkpoint: dict[str, Any] | None = json.loads(result.stdout)["checkpoint"]
    return checkpoint


async def _halts(ledger: LedgerHarness, count: int, job: str) -> list[str]:
    async with ledger.producer() as producer:
        ids = await send_halts(producer, ledger.keys[Role.OPERATOR], range(count), job, 5)
    for event_id in ids:
        await ledger.verdict(event_id)
    return ids


async def _trickle(ledger: LedgerHarness, slices: int, each: int, job: str) -> None:
    """``slices`` × ``each`` halts, a slice at a time, so that events keep arriving."""
    for n in range(slices):
        await _halts(ledger, each, f"{job}-{n}")
        await asyncio.sleep(0.3)


async def _published(conn: asyncpg.Connection, timeout: float = 60.0) -> None:
    """Every stored checkpoint's checkpoint.signed event is committed on the ledger."""
    deadline = time.monotonic() + timeout
    while True:
        missing = await conn.fetchval(
            "SELECT count(*) FROM tlog_checkpoints c WHERE NOT EXISTS"
            " (SELECT 1 FROM events e WHERE e.event_id = c.event_id)"
        )
        if missing == 0:
            return
        assert time.monotonic() < deadline, f"{missing} checkpoint(s) never published"
        await asyncio.sleep(0.2)


async def _log_matches_the_events(conn: asyncpg.Connection) -> int:
    """Each leaf once, every chain's leaves a prefix of it with no gap, and the latest
    checkpoint's root recomputed from the events in log order (a control-lane event's
    leaf names its chain by number, ADR 0024). Returns the size."""
    rows = await conn.fetch(
        "SELECT l.log_index, e.kafka_topic, e.kafka_partition, e.ledger_seq,"
        " e.event_id::text AS event_id,"
        " e.envelope_sha256, e.chain_hash FROM tlog_leaves l"
        " JOIN events e ON e.position = l.position ORDER BY l.log_index"
    )
    assert [r["log_index"] for r in rows] == list(range(len(rows)))
    assert len({r["event_id"] for r in rows}) == len(rows)
    seqs: dict[int, list[int]] = {}
    tree = MerkleTree()
    for r in rows:
        lane = "control" if r["kafka_topic"].endswith(".control") else "ingress"
        chain = chain_number(lane, r["kafka_partition"])
        seqs.setdefault(chain, []).append(r["ledger_seq"])
        leaf = EventLeaf(
            chain,
            r["ledger_seq"],
            r["event_id"],
            r["envelope_sha256"],
            r["chain_hash"],
        )
        tree.append(leaf.hash())
    for partition, found in seqs.items():
        assert found == list(range(1, len(found) + 1)), partition
    latest = await conn.fetchrow(
        "SELECT tree_size, root_hash FROM tlog_checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    assert latest["tree_size"] == len(rows)
    assert bytes(latest["root_hash"]) == tree.root()
    return len(rows)


async def test_rounds_survive_sigkill_and_proofs_verify_offline(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    conn = await ledger.connect()
    try:
        first = await _halts(ledger, 20, "ckpt-a")
        committed = await conn.fetchval("SELECT count(*) FROM events")
        checkpoint = _once(ledger)
        assert checkpoint is not None
        assert checkpoint["tree_size"] == committed
        await _published(conn)

        # kill the checkpointer again and again, each time once it is up and working,
        # while events keep coming
        publisher = asyncio.create_task(_trickle(ledger, 15, 20, "ckpt-b"))
        log_path = tmp_path / "checkpointer.log"
        kills = 0
        while not publisher.done() or kills < 4:
            proc = _checkpointer(ledger, "--every-events", "7", "--every-seconds", "0.05")
            deadline = time.monotonic() + 120
            while log_path.read_text().count("checkpointer for") <= kills:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3 + 0.4 * (kills % 3))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
        await publisher
        # each start logs the size it resumed from: rounds were committed between kills
        resumed = [int(n) for n in re.findall(r"log size (\d+)", log_path.read_text())]
        assert len(resumed) == kills and len(set(resumed)) >= 3, log_path.read_text()
        # a restart publishes what the kills left unpublished, then appends the rest;
        # the second round appends the first one's own checkpoint.signed event
        for _ in range(2):
            assert _once(ledger) is not None
            await _published(conn)
        size = await _log_matches_the_events(conn)
        assert size >= 20 + 300 + 8  # the halts, the keys, and the checkpoints' own events
        # only the last round's own checkpoint.signed event is not a leaf yet
        assert await conn.fetchval("SELECT count(*) FROM events") == size + 1

        # a monitor from scratch accepts the whole history, round after round
        watch = _cli(
            ledger.env,
            *("checkpoint", "watch", "--once", "--json"),
            *("--state", str(tmp_path / "monitor.json")),
            *("--ledger-key", ledger.keys[Role.LEDGER].did),
        )
        assert watch.returncode == 0, watch.stderr
        assert json.loads(watch.stdout.splitlines()[-1])["tree_size"] == size

        # an inclusion proof of the first halt, checked offline by `verify`
        proof_path = tmp_path / "proof.json"
        prove = _cli(ledger.env, "prove", "inclusion", first[0], "-o", str(proof_path))
        assert prove.returncode == 0, prove.stderr
        latest = json.loads(_cli(ledger.env, "checkpoint", "latest", "--json").stdout)
        origin = latest["origin"]
        ok = _cli(
            ledger.env,
            "verify",
            str(proof_path),
            "--ledger-key",
            ledger.keys[Role.LEDGER].did,
            "--origin",
            origin,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        document = json.loads(proof_path.read_text())
        assert document["inclusion"][0]["leaf"]["event_id"] == first[0]
        # against the first checkpoint too, and a consistency proof between the two
        old = _cli(
            ledger.env,
            "prove",
            "inclusion",
            first[0],
            "--checkpoint",
            str(checkpoint["tree_size"]),
            "--json",
        )
        assert old.returncode == 0, old.stderr
        assert json.loads(old.stdout)["tree_size"] == checkpoint["tree_size"]
        consistency = tmp_path / "consistency.json"
        cons = _cli(
            ledger.env,
            "prove",
            "consistency",
            str(checkpoint["tree_size"]),
            str(size),
            "-o",
            str(consistency),
        )
        assert cons.returncode == 0, cons.stderr
        assert (
            _cli(
                ledger.env,
                "verify",
                str(consistency),
                "--ledger-key",
                ledger.keys[Role.LEDGER].did,
                "--origin",
                origin,
            ).returncode
            == 0
        )
        # what is not in the log exits 1, as `checkpoint show` does; a malformed ask is usage
        never = "00000000-0000-4000-8000-000000000000"
        missing = _cli(ledger.env, "prove", "inclusion", never)
        assert missing.returncode == 1, missing.stderr
        assert f"no event {never} on the ledger" in missing.stderr
        unsigned = _cli(
            ledger.env, "prove", "consistency", str(checkpoint["tree_size"]), str(size + 10)
        )
        assert unsigned.returncode == 1, unsigned.stderr
        assert f"no checkpoint of tree size {size + 10}" in unsigned.stderr
        for usage in (("inclusion", "not-an-id"), ("consistency", str(size), "1")):
            malformed = _cli(ledger.env, "prove", *usage)
            assert malformed.returncode == 2, malformed.stderr
            assert "Usage:" in malformed.stderr
        # the listing: a header, then one signed checkpoint a line, the hash whole
        listed = _cli(ledger.env, "checkpoint", "list", "--limit", "10000").stdout.splitlines()
        assert listed[0].split() == ["TREE", "SIZE", "ROOT", "HASH", "SIGNED", "AT"]
        sizes = [int(line.split()[0]) for line in listed[1:]]
        assert checkpoint["tree_size"] in sizes and size in sizes and sizes == sorted(sizes)
        assert latest["root_hash_b64"] in listed[sizes.index(latest["tree_size"]) + 1].split()
        beyond = _cli(ledger.env, "checkpoint", "list", "--after", str(size + 10))
        assert beyond.stdout.strip() == f"no checkpoint above tree size {size + 10}"
        # a proof under another key is refused
        refused = _cli(ledger.env, "verify", str(proof_path), "--ledger-key", ledger.admin.did)
        assert refused.returncode == 1
        audit = _cli(ledger.env, "audit", "--json")
        report = json.loads(audit.stdout)
        assert audit.returncode == 0, report["problems"]
        assert report["transparency_log"]["leaves"] == size
    finally:
        await conn.close()
        ledger.processor.stop()


async def test_one_checkpointer_per_ledger_and_an_unregistered_key_is_refused(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    async with started_ledger(ledger_servers, ledger_settings, tmp_path) as ledger:
        running = _checkpointer(ledger)
        try:
            deadline = time.monotonic() + 60
            while "checkpointer for" not in (tmp_path / "checkpointer.log").read_text():
                assert running.poll() is None and time.monotonic() < deadline
                await asyncio.sleep(0.1)
            second = _cli(ledger.env, "checkpointer", "run", "--key", "ledger", "--once")
            assert second.returncode == 3
            assert "another checkpointer is running" in second.stderr
        finally:
            running.terminate()
            assert running.wait(timeout=30) == 0
    unregistered = _cli(ledger.env, "checkpointer", "run", "--key", "admin", "--once")
    assert unregistered.returncode == 2
    assert "does not hold the ledger role" in unregistered.stderr


async def test_a_gap_in_a_partition_chain_stops_the_round_and_appends_nothing(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    """Postgres appends a round's leaves itself: a chain that does not continue
    (an event deleted behind the ledger's back) must not be appended around."""
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    try:
        await _halts(ledger, 10, "gap")
    finally:
        ledger.processor.stop()
    conn = await ledger.connect()
    try:
        partition = await conn.fetchval(
            "SELECT kafka_partition FROM events GROUP BY kafka_partition"
            " HAVING max(ledger_seq) >= 3 ORDER BY max(ledger_seq) DESC LIMIT 1"
        )
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "DELETE FROM events WHERE kafka_partition = $1 AND ledger_seq = 2", partition
        )
        refused = _cli(ledger.env, "checkpointer", "run", "--key", "ledger", "--once")
        assert refused.returncode != 0
        assert "do not continue its chain" in refused.stderr, refused.stderr
        assert "claw-ledger audit" in refused.stderr
        assert await conn.fetchval("SELECT count(*) FROM tlog_leaves") == 0
        assert await conn.fetchval("SELECT count(*) FROM tlog_checkpoints") == 0
    finally:
        await conn.close()


async def _forge_checkpoint(conn: asyncpg.Connection, checkpoint: Checkpoint, key: KeyPair) -> None:
    """Store ``checkpoint``, signed by ``key``, as if the checkpointer had written it."""
    note = sign_checkpoint(checkpoint, [NoteSigner(checkpoint.origin, key)])
    await conn.execute(
        "INSERT INTO tlog_checkpoints (tree_size, origin, root_hash, note, signer_did,"
        " event_id, occurred_at) VALUES ($1, $2, $3, $4, $5, gen_random_uuid(), 'x')",
        checkpoint.size,
        checkpoint.origin,
        checkpoint.root_hash,
        note.decode(),
        key.did,
    )


async def test_watch_alerts_on_a_forged_checkpoint_and_audit_on_a_changed_node(
    ledger_servers: Any, ledger_settings: Any, tmp_path: Path
) -> None:
    ledger = await start_ledger(ledger_servers, ledger_settings, tmp_path)
    key = ledger.keys[Role.LEDGER]
    state = str(tmp_path / "monitor.json")
    watch = ("checkpoint", "watch", "--once", "--state", state)
    try:
        await _halts(ledger, 10, "forge")
        first = _once(ledger)
        assert first is not None
        assert _cli(ledger.env, *watch, "--ledger-key", key.did).returncode == 0
    finally:
        ledger.processor.stop()
    conn = await ledger.connect()
    try:
        size, origin = first["tree_size"], first["origin"]
        # the ledger's own key signs a bigger tree that does not extend the one seen
        await _forge_checkpoint(conn, Checkpoint(origin, size + 1, bytes(32)), key)
        alert = _cli(ledger.env, *watch)
        assert alert.returncode == 1
        assert "ALERT" in alert.stderr and "CONSISTENCY_PROOF_INVALID" in alert.stderr
        assert f"size {size}" in alert.stderr and f"size {size + 1}" in alert.stderr
        assert first["root_hash_b64"] in alert.stderr
        # the state still holds the last good checkpoint: the alert repeats
        assert json.loads(Path(state).read_text())["tree_size"] == size
        assert _cli(ledger.env, *watch).returncode == 1

        # a checkpoint signed by another key is an alert too
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM tlog_checkpoints WHERE tree_size = $1", size + 1)
        other = KeyPair.generate("other")
        await _forge_checkpoint(conn, Checkpoint(origin, size + 1, bytes(32)), other)
        alert = _cli(ledger.env, *watch)
        assert alert.returncode == 1 and "CHECKPOINT_KEY_UNKNOWN" in alert.stderr
        await conn.execute("DELETE FROM tlog_checkpoints WHERE tree_size = $1", size + 1)
        assert _cli(ledger.env, *watch).returncode == 0

        # the audit: one changed node, then a changed checkpoint root
        clean = json.loads(_cli(ledger.env, "audit", "--json").stdout)
        assert clean["ok"], clean["problems"]
        await conn.execute(
            "UPDATE tlog_nodes SET hash = $1 WHERE level = 1 AND idx = 1", b"\x01" * 32
        )
        report = json.loads(_cli(ledger.env, "audit", "--json").stdout)
        kinds = {(p["kind"], p["table"]) for p in report["problems"]}
        assert ("TLOG_NODE_MISMATCH", "tlog_nodes") in kinds, report["problems"]
        # and a leaf hash (the tree's level 0)
        await conn.execute(
            "UPDATE tlog_leaves SET leaf_hash = $1 WHERE log_index = 2", b"\x03" * 32
        )
        report = json.loads(_cli(ledger.env, "audit", "--json").stdout)
        kinds = {(p["kind"], p["table"]) for p in report["problems"]}
        assert ("TLOG_NODE_MISMATCH", "tlog_leaves") in kinds, report["problems"]
        await conn.execute(
            "UPDATE tlog_checkpoints SET root_hash = $1 WHERE tree_size = $2", b"\x02" * 32, size
        )
        report = json.loads(_cli(ledger.env, "audit", "--json").stdout)
        checkpoint_kinds = {p["kind"] for p in report["problems"]}
        assert "TLOG_CHECKPOINT_INVALID" in checkpoint_kinds, report["problems"]
        # a rewritten checkpoint the monitor saw is a fork to it
        assert _cli(ledger.env, *watch).returncode == 1
    finally:
        await conn.close()
