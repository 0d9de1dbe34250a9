"""The worked transparency-log example of docs/transparency.md, pinned by golden files.

Five events on two partitions, appended in two checkpointer rounds (ADR 0011),
signed by the RFC 8032 §7.1 TEST 1 key. Regenerate the golden files after an
intended format change with ``python -m tests.core._tlog_example``.
"""

from __future__ import annotations

import json
from base64 import b64encode
from pathlib import Path
from typing import Any

from ledger.chain import chain_hash
from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto import KeyPair
from ledger.encoding import sha256_b64u
from ledger.merkle import MerkleTree
from ledger.tlog import EventLeaf, order_new_leaves

GOLDEN = Path(__file__).resolve().parent / "golden"
CHECKPOINT_FILE = GOLDEN / "tlog.rfc8032-test1.checkpoint"
EXAMPLE_FILE = GOLDEN / "tlog.rfc8032-test1.example.json"

ORIGIN = "claw-ledger.example/demo"
#: RFC 8032 §7.1 TEST 1 secret key (seed)
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
KEY = KeyPair.from_seed(SEED, "ledger")
SIGNER = NoteSigner(ORIGIN, KEY)

#: (position, partition, ledger_seq): positions skip 3 and 6, as identity columns may
_ROWS = [(1, 0, 1), (2, 1, 1), (4, 0, 2), (5, 0, 3), (7, 1, 2)]
#: the checkpointer's two rounds see these positions
_ROUNDS = [(1, 2, 4), (5, 7)]


def event_rows() -> list[tuple[int, EventLeaf]]:
    rows = []
    prev: dict[int, str | None] = {}
    for position, partition, seq in _ROWS:
        event_id = f"00000000-0000-4000-8000-{position:012d}"
        envelope_sha256 = sha256_b64u(f'{{"example_event":{position}}}'.encode())
        link = chain_hash(prev.get(partition), partition, seq, event_id, envelope_sha256)
        prev[partition] = link
        rows.append((position, EventLeaf(partition, seq, event_id, envelope_sha256, link)))
    return rows


def build() -> tuple[MerkleTree, list[EventLeaf], list[Checkpoint]]:
    """The tree after both rounds, its leaves in log order, and the checkpoint of each round."""
    tree = MerkleTree()
    rows = event_rows()
    included: dict[int, int] = {}
    log: list[EventLeaf] = []
    checkpoints = []
    for round_positions in _ROUNDS:
        pending = [(pos, leaf) for pos, leaf in rows if pos in round_positions]
        new = order_new_leaves(pending, included)
        for leaf in new:
            tree.append(leaf.hash())
            included[leaf.partition] = leaf.ledger_seq
        log.extend(new)
        checkpoints.append(Checkpoint(ORIGIN, tree.size, tree.root()))
    return tree, log, checkpoints


def _b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def example() -> dict[str, Any]:
    tree, log, (old, new) = build()
    return {
        "origin": ORIGIN,
        "signer_did": KEY.did,
        "verifier_key": SIGNER.verifier.verifier_key(),
        "leaves": [
            {
                "log_index": index,
                "partition": leaf.partition,
                "ledger_seq": leaf.ledger_seq,
                "event_id": leaf.event_id,
                "envelope_sha256": leaf.envelope_sha256,
                "chain_hash": leaf.chain_hash,
                "leaf_data_hex": leaf.data().hex(),
                "leaf_hash_b64": _b64(leaf.hash()),
            }
            for index, leaf in enumerate(log)
        ],
        "checkpoints": [
            {
                "size": cp.size,
                "root_hash_b64": _b64(cp.root_hash),
                "note": sign_checkpoint(cp, [SIGNER]).decode(),
            }
            for cp in (old, new)
        ],
        "inclusion": {
            "log_index": 2,
            "tree_size": new.size,
            "proof_b64": [_b64(h) for h in tree.inclusion_proof(2, new.size)],
        },
        "consistency": {
            "old_size": old.size,
            "new_size": new.size,
            "proof_b64": [_b64(h) for h in tree.consistency_proof(old.size, new.size)],
        },
    }


def example_json() -> str:
    return json.dumps(example(), indent=2, ensure_ascii=False) + "\n"


def signed_checkpoint() -> bytes:
    _, _, checkpoints = build()
    return sign_checkpoint(checkpoints[-1], [SIGNER])


if __name__ == "__main__":
    CHECKPOINT_FILE.write_bytes(signed_checkpoint())
    EXAMPLE_FILE.write_text(example_json(), encoding="utf-8")
