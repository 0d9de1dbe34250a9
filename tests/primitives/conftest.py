"""Fixtures of the primitive tests: rules and verifiers run on an in-memory ledger."""

from __future__ import annotations

import pytest

from ._support import Ledger


@pytest.fixture
def ledger() -> Ledger:
    """A fresh ledger state with the test keys registered."""
    return Ledger()
