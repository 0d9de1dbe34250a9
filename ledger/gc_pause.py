"""Pause Python's cyclic garbage collector around work that allocates much and frees little.

Parsing a bundle of tens of megabytes, or planning ten thousand Merkle proofs,
makes hundreds of thousands of objects that all stay alive until the work ends
and form no reference cycles. Each time the young generation fills up, the
collector walks the survivors again and frees nothing; with the collector
paused, the same work runs in about half the time. Objects made meanwhile are
collected as usual once it resumes.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block; resume it after, if it ran before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
