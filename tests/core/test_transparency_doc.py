"""docs/transparency.md: its worked example is the golden one, and its verifiers work."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from nacl.exceptions import BadSignatureError

from ledger.merkle import verify_inclusion
from tests.core import _tlog_example as example

DOC = (Path(__file__).resolve().parents[2] / "docs" / "transparency.md").read_text(encoding="utf-8")
GOLDEN: dict[str, Any] = json.loads(example.EXAMPLE_FILE.read_text(encoding="utf-8"))


def _doc_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "docs/transparency.md", "exec"), namespace)
    return namespace


def test_the_doc_shows_the_golden_checkpoint_and_values() -> None:
    assert example.CHECKPOINT_FILE.read_text(encoding="utf-8").strip() in DOC
    for value in (
        GOLDEN["verifier_key"],
        GOLDEN["signer_did"],
        GOLDEN["checkpoints"][0]["root_hash_b64"],
        GOLDEN["leaves"][2]["leaf_hash_b64"],
        GOLDEN["leaves"][2]["chain_hash"],
        *GOLDEN["inclusion"]["proof_b64"],
        *GOLDEN["consistency"]["proof_b64"],
    ):
        assert value in DOC
    leaf_hex = re.sub(
        r"\s", "", DOC.split("`chain_hash` `")[1].split("```")[1].split("leaf hash")[0]
    )
    assert leaf_hex == GOLDEN["leaves"][2]["leaf_data_hex"]


def test_the_doc_inclusion_verifier_agrees_with_the_ledger() -> None:
    verify = _doc_namespace()["verify_inclusion"]
    inclusion = GOLDEN["inclusion"]
    index, size = inclusion["log_index"], inclusion["tree_size"]
    proof = [base64.b64decode(h) for h in inclusion["proof_b64"]]
    leaf = base64.b64decode(GOLDEN["leaves"][index]["leaf_hash_b64"])
    root = base64.b64decode(GOLDEN["checkpoints"][1]["root_hash_b64"])
    verify_inclusion(index, size, leaf, proof, root)
    assert verify(index, size, leaf, proof, root) is True
    for bad in (
        (index + 1, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size, leaf, proof[:-1], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [proof[0], proof[2], proof[1]], root),
        (index, size, bytes([leaf[0] ^ 1]) + leaf[1:], proof, root),
        (size, size, leaf, proof, root),
    ):
        assert verify(*bad) is False


def test_the_doc_checkpoint_sketch_opens_the_golden_checkpoint() -> None:
    open_checkpoint = _doc_namespace()["open_checkpoint"]
    note = example.CHECKPOINT_FILE.read_bytes()
    size, root = open_checkpoint(note, example.ORIGIN, example.KEY.public_key)
    assert (size, base64.b64encode(root).decode()) == (5, GOLDEN["checkpoints"][1]["root_hash_b64"])
    with pytest.raises(ValueError, match="not signed"):
        open_checkpoint(note, example.ORIGIN, bytes(32))
    with pytest.raises(BadSignatureError):
        open_checkpoint(note.replace(b"\n5\n", b"\n6\n"), example.ORIGIN, example.KEY.public_key)
