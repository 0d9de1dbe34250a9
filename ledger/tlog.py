"""What claw-ledger's transparency log holds: one leaf per accepted event (ADR 0011).

The leaf bytes bind an ``events`` row: its place in its partition's chain
(partition, ledger_seq, chain_hash), its id and the SHA-256 of its exact
envelope bytes. ``order_new_leaves`` is the checkpointer's append order.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.encoding import (
    B64U_SHA256_CANONICAL_RE,
    CANONICAL_UUID_RE,
    b64u_decode,
    b64u_digest,
    b64u_encode,
)
from ledger.errors import ProofError, ReasonCode, RejectedError
from ledger.merkle import HASH_SIZE, leaf_hash

__all__ = ["CONTROL_CHAIN_BASE", "EventLeaf", "chain_number", "order_new_leaves"]

_LEAF_VERSION = 1
_LEAF_LAYOUT = struct.Struct(">BIQ16s32s32s")


#: added to the Kafka partition of a control-lane event to make its leaf's chain
#: number (ADR 0024): each (lane, partition) is a hash chain of its own
CONTROL_CHAIN_BASE = 1 << 30


def chain_number(lane: str, partition: int) -> int:
    """The ``partition`` field of a leaf: the Kafka partition on the ingress lane,
    :data:`CONTROL_CHAIN_BASE` + the partition on the control lane."""
    return partition + (CONTROL_CHAIN_BASE if lane == "control" else 0)


@dataclass(frozen=True)
class EventLeaf:
    """One accepted event as a log entry: where it sits in its partition's chain and what it is.

    ``partition`` names the chain: :func:`chain_number` of the event's lane and
    Kafka partition (for the ingress lane, the partition itself).

    The leaf bytes (93) are ``0x01`` (version) || partition (uint32 BE) ||
    ledger_seq (uint64 BE) || event_id (16 bytes) || SHA-256 of the envelope
    bytes (32) || the row's chain_hash (32). Every field is a column of
    ``events``; the base64url columns are decoded to their digests.
    """

    partition: int
    ledger_seq: int
    event_id: str
    envelope_sha256: str
    chain_hash: str

    def data(self) -> bytes:
        partition, seq, event_id = self.partition, self.ledger_seq, self.event_id
        envelope_sha256, chain_hash = self.envelope_sha256, self.chain_hash
        if (
            type(partition) is int
            and 0 <= partition < 2**32
            and type(seq) is int
            and 1 <= seq < 2**64
            and type(event_id) is str
            and type(envelope_sha256) is str
            and type(chain_hash) is str
            and CANONICAL_UUID_RE.fullmatch(event_id)
            and B64U_SHA256_CANONICAL_RE.fullmatch(envelope_sha256)
            and B64U_SHA256_CANONICAL_RE.fullmatch(chain_hash)
        ):
            # every leaf of a proof batch passes here: decode without re-checking
            return _LEAF_LAYOUT.pack(
                _LEAF_VERSION,
                partition,
                seq,
                bytes.fromhex(event_id.replace("-", "")),
                b64u_digest(envelope_sha256),
                b64u_digest(chain_hash),
            )
        return self._checked_data()

    def _checked_data(self) -> bytes:
        """data() of a leaf that is not in canonical form: the error that names what is wrong."""

        def fail(detail: str) -> RejectedError:
            return ProofError(ReasonCode.LEAF_MALFORMED, detail)

        if type(self.partition) is not int or not 0 <= self.partition < 2**32:
            raise fail(f"partition {self.partition!r} is not a uint32")
        if type(self.ledger_seq) is not int or not 1 <= self.ledger_seq < 2**64:
            raise fail(f"ledger_seq {self.ledger_seq!r} is not a positive uint64")
        try:
            event_uuid = uuid.UUID(self.event_id)
            envelope_digest = b64u_decode(self.envelope_sha256)
            chain_digest = b64u_decode(self.chain_hash)
        except (ValueError, TypeError, AttributeError) as exc:
            raise fail(f"bad event_id or digest: {exc}") from exc
        if str(event_uuid) != self.event_id:
            raise fail("event_id is not a lowercase hyphenated UUID")
        if len(envelope_digest) != HASH_SIZE or len(chain_digest) != HASH_SIZE:
            raise fail("envelope_sha256 and chain_hash are SHA-256 digests")
        if (b64u_encode(envelope_digest), b64u_encode(chain_digest)) != (
            self.envelope_sha256,
            self.chain_hash,
        ):
            raise fail("envelope_sha256 or chain_hash is not canonical base64url")
        return _LEAF_LAYOUT.pack(
            _LEAF_VERSION,
            self.partition,
            self.ledger_seq,
            event_uuid.bytes,
            envelope_digest,
            chain_digest,
        )

    def hash(self) -> bytes:
        return leaf_hash(self.data())

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EventLeaf:
        """The leaf of an ``events`` row (its ``kafka_partition`` being the chain number)."""
        return cls(
            int(row["kafka_partition"]),
            int(row["ledger_seq"]),
            str(row["event_id"]),
            str(row["envelope_sha256"]),
            str(row["chain_hash"]),
        )

    @classmethod
    def from_data(cls, data: bytes) -> EventLeaf:
        """Parse leaf bytes strictly (exact length, known version, canonical fields)."""
        if len(data) != _LEAF_LAYOUT.size:
            raise ProofError(ReasonCode.LEAF_MALFORMED, f"a leaf is {_LEAF_LAYOUT.size} bytes")
        version, partition, seq, event_id, envelope, chain = _LEAF_LAYOUT.unpack(data)
        if version != _LEAF_VERSION:
            raise ProofError(ReasonCode.LEAF_MALFORMED, f"unknown leaf version {version}")
        event_uuid = str(uuid.UUID(bytes=event_id))
        leaf = cls(partition, seq, event_uuid, b64u_encode(envelope), b64u_encode(chain))
        leaf.data()  # seq 0 is not a ledger_seq
        return leaf


def order_new_leaves(
    pending: Iterable[tuple[int, EventLeaf]], included: Mapping[int, int]
) -> list[EventLeaf]:
    """The log order of newly committed events (ADR 0011).

    ``pending`` holds ``(position, leaf)`` pairs read per partition by
    ``ledger_seq`` above ``included[partition]`` (the last seq already in the
    log, 0 for none). They are appended in ``position`` order. Each partition
    must continue its chain without a gap or reordering; anything else means the
    reader saw a partial view and the round must not be appended.
    """
    ordered = sorted(pending, key=lambda item: item[0])
    expected = dict(included)
    result: list[EventLeaf] = []
    for position, leaf in ordered:
        want = expected.get(leaf.partition, 0) + 1
        if leaf.ledger_seq != want:
            raise ValueError(
                f"partition {leaf.partition}: position {position} has ledger_seq "
                f"{leaf.ledger_seq}, expected {want}"
            )
        expected[leaf.partition] = want
        result.append(leaf)
    return result
