"""Pure work in a forked child process while this one goes on.

:func:`forked` is a :class:`ledger.offline_verify.Background`: ``verify``
hands it a large sealed bundle's inclusion proofs, which the child checks
from the bundle's bytes while this process parses the bundle strictly and
checks the rest. The child is forked before that parse, while this process
is small: it inherits the bytes without a copy, and neither process pays for
the other's pages. Only its answer (a few hundred bytes, pickled) comes back,
through a pipe.

When a fork is not safe or fails, or the child raises, dies or is stopped, the result
is ``None`` and the caller does the work itself: the answer is the same,
only later. A fork is safe on POSIX when this thread is the process's only
one (a fork copies just the calling thread, and a lock another thread held
would stay held in the child).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Child", "can_fork", "forked"]

T = TypeVar("T")

_OK = b"k"


def can_fork() -> bool:
    """A fork is safe here: POSIX, and this thread is the process's only one."""
    return hasattr(os, "fork") and threading.active_count() == 1


class Child(Generic[T]):
    """The work running in a child; :meth:`result` waits for it."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._pid = 0
        self._pipe = -1
        if not can_fork():
            return
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no process to be had (limits, memory): the caller does the work
            os.close(read_end)
            os.close(write_end)
            return
        if pid == 0:  # the child: answer through the pipe, then leave without cleanup
            try:
                os.close(read_end)
                try:
                    answer = _OK + pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)
                except BaseException:
                    answer = b""  # no answer: the parent does the work and meets the error
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(answer)
            finally:
                os._exit(0)
        os.close(write_end)
        self._pid, self._pipe = pid, read_end

    def result(self) -> T | None:
        """The work's result, or ``None`` when the child gave none."""
        if not self._pid:
            return None
        with os.fdopen(self._pipe, "rb") as pipe:
            answer = pipe.read()
        self._reap()
        if answer[:1] != _OK:
            return None
        try:
            result: T = pickle.loads(answer[1:])
        except Exception:  # a truncated answer (the child stopped mid-write)
            return None
        return result

    def cancel(self) -> None:
        """Stop the child if it still runs (its result was not wanted)."""
        if not self._pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        os.close(self._pipe)
        self._reap()

    def _reap(self) -> None:
        os.waitpid(self._pid, 0)
        self._pid = 0


def forked(work: Callable[[], T]) -> Child[T]:
    """Start ``work`` in a forked child (or nowhere, when a fork is not safe)."""
    return Child(work)
