"""The check of the bounded control tables against their digests (ADR 0014, ADR 0020).

A processor never obeys a control row it did not write: each table's rows must
sum to the digest kept while writing them. The tables held whole are checked
as they load; the bounded ones (tokens, jobs) are streamed through the digest,
at start or, with ``control_check="background"``, beside the first batches,
and any batch whose plan read or wrote them waits for that check first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ledger.control_digest import digest_hex
from ledger.errors import ControlPlaneTamperedError
from storage.protocol import LedgerStore

__all__ = ["StreamedDigestCheck"]

log = logging.getLogger("claw_ledger.processor")


class StreamedDigestCheck:
    """Streams the bounded tables through their digests once, when :meth:`begin` is
    called after :meth:`schedule`; :meth:`wait` before trusting those tables."""

    def __init__(
        self,
        store: LedgerStore,
        trust_root: str | None,
        whole: tuple[str, ...],
        bounded: tuple[str, ...],
    ) -> None:
        self._store = store
        self._trust_root = trust_root
        self._whole = whole
        self._bounded = bounded
        self._task: asyncio.Task[None] | None = None
        #: a background check not begun yet (it begins after the first commit)
        self._due = False

    def schedule(self, background: bool) -> None:
        """(Re)start: any check in progress is replaced; ``background``: one is due."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._due = background

    def begin(self) -> None:
        """Start the due check, if one is due."""
        if self._due:
            self._due = False
            self._task = asyncio.create_task(self._run())

    @property
    def finished(self) -> bool:
        """A check ran to its end (passed or failed) and was not waited for yet."""
        return self._task is not None and self._task.done()

    @property
    def passed(self) -> bool:
        """Nothing is due or running, and the last check (if any) found no mismatch."""
        task = self._task
        return not self._due and (
            task is None or (task.done() and not task.cancelled() and task.exception() is None)
        )

    async def mismatches(self) -> dict[str, tuple[str, str]]:
        """The bounded tables whose rows, streamed in a snapshot of their own,
        do not sum to their stored digest (stored, computed); seals unsealed ones."""
        start = await self._store.open_control_state(
            self._trust_root, whole=self._whole, stream=True
        )
        tampered = {
            table: (digest_hex(digest), digest_hex(computed))
            for table, computed in start.streamed.items()
            if (digest := start.stored.get(table)) is not None and digest != computed
        }
        unsealed = {t: d for t, d in start.streamed.items() if start.stored.get(t) is None}
        sealed = not tampered and unsealed
        if sealed and await self._store.seal_control_digests(start.version, unsealed):
            log.warning("sealed the control-plane digest of %s", ", ".join(sorted(unsealed)))
        return tampered

    async def _run(self) -> None:
        """The background check: raises :class:`ControlPlaneTamperedError` on a mismatch."""
        tampered = await self.mismatches()
        if tampered:
            raise ControlPlaneTamperedError(tampered)
        log.info("control-plane digests of %s checked", ", ".join(self._bounded))

    async def wait(self) -> None:
        """Before committing a plan that read or wrote a bounded table: its check passed."""
        task = self._task
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except ControlPlaneTamperedError:
            raise  # every later batch that needs those tables is refused the same way
        except Exception:
            # the check itself failed (the database?): run it again for the next try
            self._task = asyncio.create_task(self._run())
            raise
        self._task = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
