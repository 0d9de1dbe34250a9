"""Nonce claims written together (``storage.authorize_queries.GroupedClaims``, ADR
0030): the grouping, a nonce claimed twice in one group, and failures, with a
recording writer in place of Postgres (the real statement is tested end to end
in ``tests/integration/api/test_authorize_http.py``)."""

from __future__ import annotations

import asyncio

import pytest

from ledger.errors import ServiceError
from storage.authorize_queries import GroupedClaims, NonceClaim


class _Writer:
    """Answers like the INSERT ... ON CONFLICT DO NOTHING: the first use of a
    (token, nonce) ever wins; each call waits a moment, as a round trip does."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.used: set[tuple[str, str]] = set()
        self.calls: list[list[NonceClaim]] = []
        self.fail = fail

    async def __call__(self, claims: list[NonceClaim]) -> set[str]:
        self.calls.append(claims)
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        fresh = set()
        for claim in claims:
            if (claim.token_jti, claim.nonce) not in self.used:
                self.used.add((claim.token_jti, claim.nonce))
                fresh.add(claim.decision_id)
        return fresh


async def test_claims_arriving_during_a_write_go_in_the_next_one() -> None:
    writer = _Writer()
    grouped = GroupedClaims(writer)
    first = asyncio.create_task(grouped.claim(NonceClaim("t", "n0", "d0")))
    await asyncio.sleep(0)  # the first write is on its way
    rest = [grouped.claim(NonceClaim("t", f"n{i}", f"d{i}")) for i in range(1, 50)]
    answers = await asyncio.gather(first, *rest)
    assert answers == [True] * 50
    assert [len(call) for call in writer.calls] == [1, 49]


async def test_one_nonce_twice_in_a_group_is_allowed_once() -> None:
    writer = _Writer()
    grouped = GroupedClaims(writer)
    answers = await asyncio.gather(
        *(grouped.claim(NonceClaim("t", "same", f"d{i}")) for i in range(5)),
        grouped.claim(NonceClaim("other-token", "same", "d-other")),
    )
    assert answers == [True, False, False, False, False, True]
    assert await grouped.claim(NonceClaim("t", "same", "later")) is False


async def test_a_group_is_split_at_its_bound() -> None:
    writer = _Writer()
    grouped = GroupedClaims(writer, max_batch=10)
    answers = await asyncio.gather(
        *(grouped.claim(NonceClaim("t", str(i), str(i))) for i in range(25))
    )
    assert all(answers)
    assert [len(call) for call in writer.calls] == [10, 10, 5]


async def test_a_failed_write_fails_each_of_its_claims_and_the_next_group_is_written() -> None:
    writer = _Writer(fail=ServiceError("the ledger database cannot be read"))
    grouped = GroupedClaims(writer)
    results = await asyncio.gather(
        *(grouped.claim(NonceClaim("t", str(i), str(i))) for i in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, ServiceError) for r in results)
    writer.fail = None
    assert await grouped.claim(NonceClaim("t", "after", "after")) is True


async def test_claims_waiting_when_the_writer_is_cancelled_fail_closed() -> None:
    writer = _Writer()
    grouped = GroupedClaims(writer)
    claims = [asyncio.create_task(grouped.claim(NonceClaim("t", str(i), str(i)))) for i in range(3)]
    await asyncio.sleep(0.001)
    writing = grouped._writing
    assert writing is not None
    writing.cancel()
    for claim in claims:
        with pytest.raises(ServiceError):
            await claim
