"""The per-partition hash chain that makes a missing or altered ledger row detectable.

Each accepted event gets the next ``ledger_seq`` of its partition (contiguous
from 1) and a ``chain_hash`` over the previous chain hash and the SHA-256 of
the exact envelope bytes received.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import sha256

from ledger.canonical import jcs
from ledger.encoding import b64u_encode, sha256_b64u

__all__ = ["ChainLink", "ChainProblem", "chain_hash", "verify_chain"]


#: Values that JSON writes as themselves between quotes (UUIDs, base64url digests).
_PLAIN = r"[A-Za-z0-9_\-]{1,200}"
# two or three such values tested in one match: a space is none of them, so the
# split is unambiguous (a match per value was a tenth of a link's cost)
_PLAIN_PAIR = re.compile(f"{_PLAIN} {_PLAIN}")
_PLAIN_TRIPLE = re.compile(f"{_PLAIN} {_PLAIN} {_PLAIN}")


def chain_hash(
    prev_chain_hash: str | None,
    partition: int,
    ledger_seq: int,
    event_id: str,
    envelope_sha256: str,
) -> str:
    """b64u(SHA-256(JCS({prev, partition, seq, event_id, envelope_sha256}))).

    This runs once per ledger row, so the usual case (integers, a UUID and
    base64url digests, for which the JCS text is a plain template) skips the
    general serialiser; both paths give the same bytes (pinned by a test).
    """
    if (
        type(partition) is int
        and type(ledger_seq) is int
        and type(event_id) is str
        and type(envelope_sha256) is str
        and (
            _PLAIN_PAIR.fullmatch(f"{event_id} {envelope_sha256}")
            if prev_chain_hash is None
            else type(prev_chain_hash) is str
            and _PLAIN_TRIPLE.fullmatch(f"{event_id} {envelope_sha256} {prev_chain_hash}")
        )
    ):
        prev = "null" if prev_chain_hash is None else f'"{prev_chain_hash}"'
        text = (
            f'{{"envelope_sha256":"{envelope_sha256}","event_id":"{event_id}",'
            f'"ledger_seq":{ledger_seq},"partition":{partition},"prev":{prev}}}'
        )
        return b64u_encode(sha256(text.encode("ascii")).digest())
    return sha256_b64u(
        jcs(
            {
                "envelope_sha256": envelope_sha256,
                "event_id": event_id,
                "ledger_seq": ledger_seq,
                "partition": partition,
                "prev": prev_chain_hash,
            }
        )
    )


@dataclass(frozen=True)
class ChainLink:
    partition: int
    ledger_seq: int
    event_id: str
    envelope_raw: bytes
    prev_chain_hash: str | None
    chain_hash: str


@dataclass(frozen=True)
class ChainProblem:
    partition: int
    ledger_seq: int
    problem: str


def verify_chain(
    links: Iterable[ChainLink], *, after_seq: int = 0, after_hash: str | None = None
) -> list[ChainProblem]:
    """Check links of one partition, in ``ledger_seq`` order, starting at seq 1, or
    after ``after_seq`` whose chain hash is ``after_hash`` (an archive boundary)."""
    problems: list[ChainProblem] = []
    expected_seq = after_seq + 1
    prev: str | None = after_hash
    for link in links:
        if link.ledger_seq != expected_seq:
            problems.append(
                ChainProblem(link.partition, link.ledger_seq, f"gap: expected seq {expected_seq}")
            )
        if link.prev_chain_hash != prev:
            problems.append(ChainProblem(link.partition, link.ledger_seq, "prev hash mismatch"))
        recomputed = chain_hash(
            prev, link.partition, link.ledger_seq, link.event_id, sha256_b64u(link.envelope_raw)
        )
        if recomputed != link.chain_hash:
            problems.append(ChainProblem(link.partition, link.ledger_seq, "chain hash mismatch"))
        prev = link.chain_hash
        expected_seq = link.ledger_seq + 1
    return problems
