"""The tamper audit of the transparency log: the stored tree against a rebuild from the events.

``claw-ledger audit`` streams the leaves (each joined to its event) in log
order into :class:`TreeRebuild`, which recomputes every complete-subtree node
in memory (64 bytes per event), then compares the stored nodes and every
signed checkpoint with it. The events are the evidence: a node, a leaf
assignment or a checkpoint changed in the database shows here, and so does a
checkpoint whose ``checkpoint.signed`` event says otherwise.
"""

from __future__ import annotations

import binascii
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.audit import AuditProblem, ProblemKind
from ledger.checkpoint import NoteVerifier, open_checkpoint
from ledger.errors import RejectedError
from ledger.merkle import EMPTY_ROOT, HASH_SIZE, InMemoryNodeStore, MerkleTree
from ledger.tlog import EventLeaf

__all__ = ["TreeRebuild"]


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


@dataclass
class TreeRebuild:
    """The log rebuilt from its leaves' events; collects :class:`AuditProblem` values."""

    store: InMemoryNodeStore = field(default_factory=InMemoryNodeStore)
    problems: list[AuditProblem] = field(default_factory=list)
    #: partition -> the last ledger_seq seen in log order
    included: dict[int, int] = field(default_factory=dict)
    #: checkpoints checked
    checkpoints: int = 0
    _tree: MerkleTree | None = None

    @property
    def tree(self) -> MerkleTree:
        if self._tree is None:
            self._tree = MerkleTree(self.store)
        return self._tree

    @property
    def size(self) -> int:
        return self.tree.size

    def _leaf_problem(self, index: int, problem: str, **fields: Any) -> None:
        self.problems.append(
            AuditProblem(
                ProblemKind.TLOG_LEAF_MISMATCH, problem, table="tlog_leaves", row=index, **fields
            )
        )

    def add_leaf(self, row: Mapping[str, Any]) -> None:
        """One ``tlog_leaves`` row (``log_index``, ``event_id``, ``kafka_partition``,
        ``ledger_seq``, ``leaf_hash``) with its event's columns as ``e_*`` (``None`` when
        there is none)."""
        index = int(row["log_index"])
        if index != self.size:
            self._leaf_problem(
                index,
                f"log index {self.size} is missing" if index > self.size else "log index repeats",
                column="log_index",
                expected=self.size,
                found=index,
            )
            if index < self.size:
                return
            # go on from the row found, so one hole is reported once
            while self.size < index:
                self.tree.append(EMPTY_ROOT)
        leaf_fields = (str(row["event_id"]), int(row["kafka_partition"]), int(row["ledger_seq"]))
        if row.get("archived"):
            self._archived_leaf(index, row, leaf_fields)
            return
        if row["e_event_id"] is None:
            self._leaf_problem(index, "the leaf's event is not in events", column="position")
            self.tree.append(EMPTY_ROOT)
            return
        event_fields = (str(row["e_event_id"]), int(row["e_partition"]), int(row["e_seq"]))
        self._check_names(index, "event", event_fields, leaf_fields)
        partition, seq = event_fields[1], event_fields[2]
        want = self.included.get(partition, 0) + 1
        if seq != want:
            self._leaf_problem(
                index,
                f"partition {partition}'s leaves do not continue its chain",
                partition=partition,
                ledger_seq=seq,
                column="ledger_seq",
                expected=want,
                found=seq,
            )
        self.included[partition] = max(seq, self.included.get(partition, 0))
        leaf = EventLeaf(
            partition, seq, event_fields[0], str(row["e_envelope_sha256"]), str(row["e_chain_hash"])
        )
        try:
            hashed = leaf.hash()
        except RejectedError as exc:
            self._leaf_problem(index, f"the event's leaf is malformed: {exc.detail}")
            hashed = EMPTY_ROOT
        stored = bytes(row["leaf_hash"])
        if stored != hashed:
            self.problems.append(
                AuditProblem(
                    ProblemKind.TLOG_NODE_MISMATCH,
                    "the leaf hash is not its event's",
                    partition=partition,
                    ledger_seq=seq,
                    table="tlog_leaves",
                    row=index,
                    column="leaf_hash",
                    expected=_b64(hashed),
                    found=_b64(stored),
                )
            )
        self.tree.append(hashed)

    def _archived_leaf(
        self, index: int, row: Mapping[str, Any], leaf_fields: tuple[str, int, int]
    ) -> None:
        """A leaf whose event was archived (ADR 0021): the event's envelope hash and
        chain hash left with it, so the stored leaf hash stands for it; the leaf
        must still name the event ``event_keys`` recorded at its position."""
        if row["k_event_id"] is None:
            self._leaf_problem(index, "the leaf's archived event is not in event_keys")
        else:
            keys = (str(row["k_event_id"]), int(row["k_partition"]), int(row["k_seq"]))
            self._check_names(index, "archived event", keys, leaf_fields)
        partition, seq = leaf_fields[1], leaf_fields[2]
        self.included[partition] = max(seq, self.included.get(partition, 0))
        self.tree.append(bytes(row["leaf_hash"]))

    def _check_names(
        self,
        index: int,
        what: str,
        pointed_at: tuple[str, int, int],
        leaf_fields: tuple[str, int, int],
    ) -> None:
        """The leaf row names (event id, partition, sequence) the event it points at."""
        if pointed_at != leaf_fields:
            self._leaf_problem(
                index,
                f"the leaf row does not name the {what} it points at",
                column="event_id, kafka_partition, ledger_seq",
                expected=list(pointed_at),
                found=list(leaf_fields),
            )

    def check_node(self, level: int, index: int, stored: bytes) -> None:
        """One stored node against the rebuild."""
        try:
            expected = self.store.get(level, index)
        except KeyError:
            expected = None
        if expected == bytes(stored):
            return
        self.problems.append(
            AuditProblem(
                ProblemKind.TLOG_NODE_MISMATCH,
                "a node the leaves do not produce"
                if expected is None
                else "the node is not what its leaves recompute",
                table="tlog_nodes",
                row=f"level {level} index {index}",
                column="hash",
                expected=None if expected is None else _b64(expected),
                found=_b64(bytes(stored)),
            )
        )

    def check_node_counts(self, stored: Mapping[int, int]) -> None:
        """``stored``: level (from 1: level 0 is the leaves) -> how many nodes of that
        level ``tlog_nodes`` holds."""
        levels = max(self.size.bit_length(), max(stored, default=-1) + 1)
        for level in range(1, levels):
            want = self.size >> level
            found = stored.get(level, 0)
            if found < want:
                self.problems.append(
                    AuditProblem(
                        ProblemKind.TLOG_NODE_MISMATCH,
                        f"{want - found} node(s) of level {level} are missing",
                        table="tlog_nodes",
                        row=f"level {level}",
                        expected=want,
                        found=found,
                    )
                )

    def check_checkpoint(
        self,
        row: Mapping[str, Any],
        ledger_keys: Collection[str],
        published_note: str | None,
    ) -> None:
        """A ``tlog_checkpoints`` row: its root is the rebuild's at its size, its note is
        a checkpoint of that size and root signed by ``signer_did`` (a key that holds the
        ledger role), and its ``checkpoint.signed`` event, if on the ledger, carries the
        same note."""
        size = int(row["tree_size"])
        root = bytes(row["root_hash"])
        self.checkpoints += 1

        def problem(text: str, column: str, expected: Any = None, found: Any = None) -> None:
            self.problems.append(
                AuditProblem(
                    ProblemKind.TLOG_CHECKPOINT_INVALID,
                    text,
                    table="tlog_checkpoints",
                    row=size,
                    column=column,
                    expected=expected,
                    found=found,
                )
            )

        if size > self.size:
            problem(f"a checkpoint of size {size} but the log has {self.size} leaves", "tree_size")
        elif len(root) != HASH_SIZE or self.tree.root(size) != root:
            problem(
                "the root is not the root of the rebuilt tree",
                "root_hash",
                _b64(self.tree.root(size)),
                _b64(root),
            )
        signer = str(row["signer_did"])
        if signer not in ledger_keys:
            problem("signed by a key that never held the ledger role", "signer_did", found=signer)
        try:
            verifier = NoteVerifier.from_did(str(row["origin"]), signer)
            checkpoint = open_checkpoint(
                str(row["note"]).encode("utf-8"), [verifier], origin=str(row["origin"])
            )
        except (RejectedError, ValueError) as exc:
            problem(f"the note does not verify: {exc}", "note")
        else:
            if (checkpoint.size, checkpoint.root_hash) != (size, root):
                problem(
                    "the note's size and root are not the row's",
                    "note",
                    f"{size} {_b64(root)}",
                    f"{checkpoint.size} {_b64(checkpoint.root_hash)}",
                )
        if published_note is not None and published_note != row["note"]:
            problem(
                "the checkpoint.signed event on the ledger carries another note",
                "note",
                published_note,
                row["note"],
            )

    def missing_checkpoint(self, size: int) -> None:
        """A ``checkpoint.signed`` event of ``size`` whose checkpoint is not in the table."""
        self.problems.append(
            AuditProblem(
                ProblemKind.TLOG_CHECKPOINT_INVALID,
                f"the ledger published a checkpoint of size {size} that tlog_checkpoints lacks",
                table="tlog_checkpoints",
                row=size,
                column="tree_size",
                expected=size,
            )
        )
