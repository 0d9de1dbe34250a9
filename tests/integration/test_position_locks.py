"""The two writers of ``consumer_positions`` lock its rows in partition order.

A lane's commit (``commit_batch``) and the forwarded marks of its previous
commit (``record_forwarded``, ADR 0008) run side by side on two connections.
Taken in opposite orders, their row locks deadlock, and a processor used to
exit on the deadlock. Here a third connection holds partition 0; each writer,
asked for partitions 1 and 0 in that order, must then wait on 0 without
having locked 1 first."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import pytest

from ledger.batch import PartitionBatch, PartitionPosition
from storage.postgres import commit_batch, record_forwarded
from storage.protocol import BatchCommit
from tests.fixtures_ledger import LedgerHarness

pytestmark = pytest.mark.integration

Writer = Callable[[asyncpg.Connection, str, str], Coroutine[Any, Any, None]]


async def _forwarded(conn: asyncpg.Connection, group: str, topic: str) -> None:
    await record_forwarded(conn, group, topic, {1: 20, 0: 20})


async def _committed(conn: asyncpg.Connection, group: str, topic: str) -> None:
    batches = [
        PartitionBatch(p, 10, 10, PartitionPosition(30, 0, None), events=(), quarantined=())
        for p in (1, 0)
    ]
    await commit_batch(conn, BatchCommit(group, topic, batches, projections=()))


@pytest.mark.parametrize("writer", [_forwarded, _committed], ids=["forwarded", "commit"])
async def test_a_writer_waits_on_the_lowest_partition_before_locking_the_next(
    running_ledger: LedgerHarness, writer: Writer
) -> None:
    group, topic = f"locks-{uuid.uuid4().hex[:8]}", "locks"
    holder, writing, probe = [await running_ledger.connect() for _ in range(3)]
    try:
        await holder.executemany(
            "INSERT INTO consumer_positions (consumer_group, topic, kafka_partition,"
            " next_offset, forwarded_offset) VALUES ($1, $2, $3, 10, 10)",
            [(group, topic, p) for p in (0, 1)],
        )
        held = holder.transaction()
        await held.start()
        await holder.execute(
            "SELECT 1 FROM consumer_positions WHERE consumer_group = $1 AND topic = $2"
            " AND kafka_partition = 0 FOR UPDATE",
            group,
            topic,
        )
        task = asyncio.create_task(writer(writing, group, topic))
        await asyncio.sleep(0.5)  # the writer is now waiting for partition 0
        assert not task.done()
        async with probe.transaction():
            # NOWAIT: refused at once if the writer had locked partition 1 first
            free = await probe.fetchval(
                "SELECT kafka_partition FROM consumer_positions WHERE consumer_group = $1"
                " AND topic = $2 AND kafka_partition = 1 FOR UPDATE NOWAIT",
                group,
                topic,
            )
        assert free == 1
        await held.rollback()
        await asyncio.wait_for(task, 30)
    finally:
        for conn in (holder, writing, probe):
            await conn.close()
