"""The request parameters the API routes and the Trust Pulse pages share: what
Postgres can hold, checked before a query is built (a 400, not a database
error and a 500)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from ledger.encoding import MAX_POSITION

__all__ = ["MAX_POSITION", "MAX_TEXT", "NO_NUL", "Cursor", "FilterText", "Identifier", "Position"]

#: Postgres text cannot hold U+0000: refuse it as a bad parameter, not a database error
NO_NUL = r"^[^\x00]*$"
#: the longest filter text (a stream, a DID)
MAX_TEXT = 512

#: a record's id in a path: a job, a token, a policy hash, a pulse record
Identifier = Annotated[str, Path(min_length=1, max_length=256, pattern=NO_NUL)]
#: an optional text filter (stream, signer)
FilterText = Annotated[str | None, Query(max_length=MAX_TEXT, pattern=NO_NUL)]
#: a keyset cursor: the last position or id of the previous page
Cursor = Annotated[
    int | None,
    Query(ge=0, le=MAX_POSITION, description="`next_cursor` of the previous page"),
]
#: the same where the pages default it to 0
Position = Annotated[int, Query(ge=0, le=MAX_POSITION)]
