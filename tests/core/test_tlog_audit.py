"""The transparency log's audit (ledger/tlog_audit.py) over the worked example of
docs/transparency.md: a faithful copy of the tables passes, and each kind of change
to a leaf, a node or a checkpoint is reported with its kind."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pytest

from ledger.audit import ProblemKind
from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto import KeyPair
from ledger.tlog_audit import TreeRebuild
from tests.core import _tlog_example as example

Tables = dict[str, Any]


def _tables() -> Tables:
    """What the checkpointer stores for the example's two rounds."""
    tree, log, checkpoints = example.build()
    leaves = [
        {
            "log_index": index,
            "event_id": leaf.event_id,
            "kafka_partition": leaf.partition,
            "ledger_seq": leaf.ledger_seq,
            "leaf_hash": leaf.hash(),
            "e_event_id": leaf.event_id,
            "e_partition": leaf.partition,
            "e_seq": leaf.ledger_seq,
            "e_envelope_sha256": leaf.envelope_sha256,
            "e_chain_hash": leaf.chain_hash,
        }
        for index, leaf in enumerate(log)
    ]
    nodes = {
        (level, index): tree.store.get(level, index)
        for level in range(1, 3)
        for index in range(tree.size >> level)
    }
    rows = [
        {
            "tree_size": cp.size,
            "origin": cp.origin,
            "root_hash": cp.root_hash,
            "note": sign_checkpoint(cp, [example.SIGNER]).decode(),
            "signer_did": example.KEY.did,
        }
        for cp in checkpoints
    ]
    published = {row["tree_size"]: row["note"] for row in rows}
    return {"leaves": leaves, "nodes": nodes, "checkpoints": rows, "published": published}


def _audit(tables: Tables, ledger_keys: set[str] | None = None) -> list[Any]:
    rebuild = TreeRebuild()
    for row in tables["leaves"]:
        rebuild.add_leaf(row)
    counts: dict[int, int] = {}
    for (level, index), hashed in sorted(tables["nodes"].items()):
        counts[level] = counts.get(level, 0) + 1
        rebuild.check_node(level, index, hashed)
    rebuild.check_node_counts(counts)
    published = dict(tables["published"])
    keys = {example.KEY.did} if ledger_keys is None else ledger_keys
    for row in tables["checkpoints"]:
        rebuild.check_checkpoint(row, keys, published.pop(row["tree_size"], None))
    for size in published:
        rebuild.missing_checkpoint(size)
    return rebuild.problems


def test_the_stored_example_passes() -> None:
    assert _audit(_tables()) == []


def _set(
    path: Callable[[Tables], dict[Any, Any]], key: Hashable, value: Any
) -> Callable[[Tables], None]:
    def change(tables: Tables) -> None:
        path(tables)[key] = value

    return change


def _forged_note(tables: Tables) -> None:
    other = KeyPair.generate("other")
    row = tables["checkpoints"][1]
    checkpoint = Checkpoint(row["origin"], row["tree_size"], row["root_hash"])
    row["note"] = sign_checkpoint(checkpoint, [NoteSigner(row["origin"], other)]).decode()


def _drop_leaf(tables: Tables) -> None:
    del tables["leaves"][1]


def _drop_node(tables: Tables) -> None:
    del tables["nodes"][(1, 0)]


def _drop_checkpoint_row(tables: Tables) -> None:
    del tables["checkpoints"][0]


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (_set(lambda t: t["leaves"][2], "leaf_hash", b"\x00" * 32), ProblemKind.TLOG_NODE_MISMATCH),
        (_set(lambda t: t["nodes"], (1, 1), b"\x01" * 32), ProblemKind.TLOG_NODE_MISMATCH),
        (_set(lambda t: t["nodes"], (3, 0), b"\x01" * 32), ProblemKind.TLOG_NODE_MISMATCH),
        (_drop_node, ProblemKind.TLOG_NODE_MISMATCH),
        (_set(lambda t: t["leaves"][3], "e_event_id", None), ProblemKind.TLOG_LEAF_MISMATCH),
        (_set(lambda t: t["leaves"][3], "event_id", "x"), ProblemKind.TLOG_LEAF_MISMATCH),
        (_drop_leaf, ProblemKind.TLOG_LEAF_MISMATCH),
        (
            _set(lambda t: t["checkpoints"][0], "root_hash", b"\x02" * 32),
            ProblemKind.TLOG_CHECKPOINT_INVALID,
        ),
        (_forged_note, ProblemKind.TLOG_CHECKPOINT_INVALID),
        (_set(lambda t: t["published"], 5, "another note\n"), ProblemKind.TLOG_CHECKPOINT_INVALID),
        (_drop_checkpoint_row, ProblemKind.TLOG_CHECKPOINT_INVALID),
    ],
)
def test_each_change_is_found(change: Callable[[Tables], None], kind: ProblemKind) -> None:
    tables = _tables()
    change(tables)
    assert kind in {problem.kind for problem in _audit(tables)}


def test_a_checkpoint_by_a_key_without_the_ledger_role_is_found() -> None:
    problems = _audit(_tables(), ledger_keys=set())
    assert {p.kind for p in problems} == {ProblemKind.TLOG_CHECKPOINT_INVALID}
    assert all(p.column == "signer_did" for p in problems)


def _archive_first_leaves(tables: Tables, count: int) -> None:
    """The first ``count`` leaves' events detached by an archive cut: no event row,
    their ids and coordinates still in event_keys."""
    for row in tables["leaves"][:count]:
        row.update(
            archived=True,
            k_event_id=row["event_id"],
            k_partition=row["kafka_partition"],
            k_seq=row["ledger_seq"],
            e_event_id=None,
            e_partition=None,
            e_seq=None,
            e_envelope_sha256=None,
            e_chain_hash=None,
        )


def test_leaves_of_archived_events_stand_on_their_stored_hash() -> None:
    tables = _tables()
    _archive_first_leaves(tables, 3)
    assert _audit(tables) == []


def test_an_archived_leaf_changed_is_still_found() -> None:
    tables = _tables()
    _archive_first_leaves(tables, 3)
    tables["leaves"][1]["leaf_hash"] = bytes(32)
    kinds = {p.kind for p in _audit(tables)}
    assert ProblemKind.TLOG_NODE_MISMATCH in kinds
    tables = _tables()
    _archive_first_leaves(tables, 3)
    tables["leaves"][2]["event_id"] = "00000000-0000-4000-8000-000000000000"
    problems = _audit(tables)
    assert [p.kind for p in problems] == [ProblemKind.TLOG_LEAF_MISMATCH]
    assert problems[0].row == 2
