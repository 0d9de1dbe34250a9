"""asyncpg's pool logs each failed reconnect of its connection floor during a
database outage; the ledger's services keep those records to one line."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from storage import quiet_pool_reconnects


def _log_reconnect_failure(error: BaseException) -> None:
    try:
        raise error
    except BaseException:
        # what asyncpg.pool.Pool._maintain_min_size logs
        logging.getLogger("asyncpg.pool").warning(
            "Failed to restore the pool connection floor; retrying", exc_info=True
        )


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    ],
)
def test_an_unavailable_database_is_one_line(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    quiet_pool_reconnects()
    quiet_pool_reconnects()  # idempotent: one filter
    assert len(logging.getLogger("asyncpg.pool").filters) == 1
    with caplog.at_level(logging.WARNING, logger="asyncpg.pool"):
        _log_reconnect_failure(error)
    (record,) = caplog.records
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert record.getMessage() == (
        f"Failed to restore the pool connection floor; retrying: {error}"
    )


def test_any_other_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    quiet_pool_reconnects()
    with caplog.at_level(logging.WARNING, logger="asyncpg.pool"):
        _log_reconnect_failure(ValueError("a bug"))
    assert "Traceback" in caplog.text and "ValueError: a bug" in caplog.text
