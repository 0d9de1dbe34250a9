"""Steps 1–3 of many stored messages, in order, with the signatures checked in
worker processes: the verdicts a verified replay or the audit folds.

The main process parses each message and runs every check but the Ed25519
one (:func:`ledger.verify.verify_message` with ``signature=False``); the
signatures of a chunk go to a pool of processes as (DID, hash, signature)
triples, a few hundred bytes a message, and come back as one byte each. A
chunk's verdicts are handed over only once its signatures are known, in
source order, so a consumer that stops at the first failure (the replay fold)
sees exactly what verifying in-process gives: the same
:class:`~ledger.verify.Rejected` at the same message, nothing after it.
While the workers check chunk *n*, the main process parses chunk *n + 1* and
folds chunk *n − 1*.

``jobs=1`` verifies in-process, with no pool. ``signatures=False`` checks no
signature at all (``replay --no-signatures``: the store is trusted for them).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from ledger.envelope import signatures_verify
from ledger.errors import ServiceError
from ledger.verify import (
    Rejected,
    Verified,
    signature_of,
    signature_refusal,
    verify_message,
)

__all__ = ["CHUNK", "VerifyPool", "default_jobs", "signatures_verify"]

T = TypeVar("T")
Verdict = Verified | Rejected

#: messages per chunk: big enough that a pool round trip is a small share
CHUNK = 1024
#: stored envelopes were within the limit when accepted; never refused by size here
_NO_SIZE_LIMIT = 1 << 31


def default_jobs() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class _Chunk(Generic[T]):
    items: list[T]
    verdicts: list[Verdict]
    #: indexes (into ``verdicts``) of the Verified ones whose signature is checked
    checked: list[int]
    future: Future[bytes] | None


class VerifyPool:
    """Verify messages chunk by chunk; use as a context manager (the pool).

    ``raw`` gives the message bytes of an item. :meth:`verdicts` and
    :meth:`averdicts` yield ``(item, verdict)`` lists in source order.
    """

    def __init__(
        self,
        jobs: int | None = None,
        *,
        signatures: bool = True,
        chunk: int = CHUNK,
        freeze_gc: bool = False,
    ) -> None:
        self.jobs = default_jobs() if jobs is None else jobs
        if self.jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.signatures = signatures
        self.chunk = chunk
        #: move what earlier chunks left alive out of the collector's sight: a
        #: replay keeps its state for its whole run, and rescanning it with every
        #: full collection cost a quarter of the fold
        self.freeze_gc = freeze_gc
        self._pool: ProcessPoolExecutor | None = None
        self._chunks = 0
        #: signatures sent to the worker processes so far
        self.checked_in_workers = 0
        #: chunks verified ahead of the one being handed over
        self.depth = 2 * self.jobs

    @property
    def parallel(self) -> bool:
        return self.signatures and self.jobs > 1

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self.freeze_gc:
            gc.unfreeze()

    def _start(self, items: list[T], raw: Callable[[T], bytes]) -> _Chunk[T]:
        # the first chunk is verified here: a small source is done before a pool
        # of fresh interpreters would be up
        pooled = self.parallel and self._chunks > 0
        self._chunks += 1
        in_process = self.signatures and not pooled
        verdicts = [
            verify_message(raw(item), max_bytes=_NO_SIZE_LIMIT, signature=in_process)
            for item in items
        ]
        if not pooled:
            return _Chunk(items, verdicts, [], None)
        checked = [i for i, verdict in enumerate(verdicts) if isinstance(verdict, Verified)]
        triples = [signature_of(verdicts[i]) for i in checked]  # type: ignore[arg-type]
        self.checked_in_workers += len(triples)
        if self._pool is None:
            # spawn: the caller may run threads (an event loop's, a progress bar's),
            # and a forked child would inherit their locks held
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.jobs, mp_context=context)
        return _Chunk(items, verdicts, checked, self._pool.submit(signatures_verify, triples))

    def _finish(self, chunk: _Chunk[T], results: bytes | None) -> list[tuple[T, Verdict]]:
        verdicts = chunk.verdicts
        if results is not None:
            for index, ok in zip(chunk.checked, results, strict=True):
                if not ok:
                    verified = verdicts[index]
                    assert isinstance(verified, Verified)
                    verdicts[index] = signature_refusal(verified)
        if self.freeze_gc:
            gc.freeze()
        return list(zip(chunk.items, verdicts, strict=True))

    def verdicts(
        self, items: Iterable[T], raw: Callable[[T], bytes]
    ) -> Iterator[list[tuple[T, Verdict]]]:
        """The verdicts of ``items``, a chunk at a time, in order."""
        inflight: deque[_Chunk[T]] = deque()
        batch: list[T] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.chunk:
                inflight.append(self._start(batch, raw))
                batch = []
                while len(inflight) > self.depth or (inflight and inflight[0].future is None):
                    yield self._finish_now(inflight.popleft())
        if batch:
            inflight.append(self._start(batch, raw))
        while inflight:
            yield self._finish_now(inflight.popleft())

    def _finish_now(self, chunk: _Chunk[T]) -> list[tuple[T, Verdict]]:
        if chunk.future is None:
            return self._finish(chunk, None)
        with _worker_failure():
            results = chunk.future.result()
        return self._finish(chunk, results)

    async def averdicts(
        self, items: AsyncIterable[T], raw: Callable[[T], bytes]
    ) -> AsyncIterator[list[tuple[T, Verdict]]]:
        """:meth:`verdicts` of an async source; waiting for the workers lets the
        loop read on meanwhile."""
        async for chunk in self.averdicts_of_batches(_batched(items, self.chunk), raw):
            yield chunk

    async def averdicts_of_batches(
        self, batches: AsyncIterable[list[T]], raw: Callable[[T], bytes]
    ) -> AsyncIterator[list[tuple[T, Verdict]]]:
        """:meth:`averdicts` of a source that hands over lists of items (a database
        cursor's pages): no await per item."""
        inflight: deque[_Chunk[T]] = deque()
        batch: list[T] = []
        async for items in batches:
            batch.extend(items)
            while len(batch) >= self.chunk:
                inflight.append(self._start(batch[: self.chunk], raw))
                del batch[: self.chunk]
                while len(inflight) > self.depth or (inflight and inflight[0].future is None):
                    yield await self._afinish(inflight.popleft())
        if batch:
            inflight.append(self._start(batch, raw))
        while inflight:
            yield await self._afinish(inflight.popleft())

    async def _afinish(self, chunk: _Chunk[T]) -> list[tuple[T, Verdict]]:
        if chunk.future is None:
            return self._finish(chunk, None)
        with _worker_failure():
            results: bytes = await asyncio.wrap_future(chunk.future)
        return self._finish(chunk, results)


async def _batched(items: AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextmanager
def _worker_failure() -> Iterator[None]:
    """A worker that died (killed, out of memory) fails the run: it is no verdict."""
    try:
        yield
    except BrokenProcessPool as exc:
        raise ServiceError(
            f"a signature-checking worker process died: {exc}",
            hint="rerun; with little memory, fewer --jobs (or --jobs 1)",
        ) from exc
