"""``checkpoint.signed``: the rule accepts only a checkpoint its own signer signed, and
docs/formats.md §13's verifier agrees with the ledger's on its worked example."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledger.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto import KeyPair
from ledger.errors import CheckpointError, ReasonCode
from ledger.events import build_event
from ledger.offline_verify import verify_bytes
from ledger.registry import DEFAULT_RULE_SETTINGS
from ledger.state import EventContext, LedgerState
from ledger.types import REGISTRY
from ledger.types.checkpoints import CheckpointSigned
from tests.core import _tlog_example as example

ORIGIN = "ledger.example/claw"
LEDGER = KeyPair.generate("ledger")
OTHER = KeyPair.generate("other")
ROOT = bytes(range(32))
ROOT_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
DOC = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text(encoding="utf-8")


def _note(key: KeyPair, origin: str = ORIGIN, size: int = 7, root: bytes = ROOT) -> str:
    return sign_checkpoint(Checkpoint(origin, size, root), [NoteSigner(origin, key)]).decode()


def _check(signer: KeyPair, **body: Any) -> None:
    values: dict[str, Any] = {
        "origin": ORIGIN,
        "tree_size": 7,
        "root_hash_b64": ROOT_B64,
        "note": _note(LEDGER),
    } | body
    stream = f"checkpoint:{values['origin']}"
    event = build_event("checkpoint.signed", stream, values, signer)
    spec = REGISTRY["checkpoint.signed"]
    ctx = EventContext(event, CheckpointSigned.model_validate(values), signer.did)
    spec.check(LedgerState(), ctx, DEFAULT_RULE_SETTINGS)
    assert spec.apply(LedgerState(), ctx, DEFAULT_RULE_SETTINGS) == []


def test_a_checkpoint_signed_by_the_events_signer_is_accepted() -> None:
    _check(LEDGER)


@pytest.mark.parametrize(
    ("signer", "body", "code"),
    [
        # the note is by another key than the event's signer
        (OTHER, {}, ReasonCode.CHECKPOINT_KEY_UNKNOWN),
        # the body does not repeat the note's size or root
        (LEDGER, {"tree_size": 8}, ReasonCode.CHECKPOINT_MALFORMED),
        (LEDGER, {"root_hash_b64": "A" * 43 + "="}, ReasonCode.CHECKPOINT_MALFORMED),
        # the note is of another log
        (
            LEDGER,
            {"note": _note(LEDGER, origin="other.example/log")},
            ReasonCode.CHECKPOINT_KEY_UNKNOWN,
        ),
        (LEDGER, {"note": "not a note\n"}, ReasonCode.CHECKPOINT_MALFORMED),
    ],
)
def test_a_checkpoint_that_is_not_the_signers_is_refused(
    signer: KeyPair, body: dict[str, Any], code: ReasonCode
) -> None:
    with pytest.raises(CheckpointError) as info:
        _check(signer, **body)
    assert info.value.code is code


def test_the_note_signed_under_another_origin_name_is_refused() -> None:
    forged = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), [NoteSigner("x.example/y", LEDGER)])
    with pytest.raises(CheckpointError) as info:
        _check(LEDGER, note=forged.decode())
    assert info.value.code is ReasonCode.CHECKPOINT_KEY_UNKNOWN


def test_the_stream_is_the_origins() -> None:
    event = build_event(
        "checkpoint.signed",
        "checkpoint:elsewhere",
        {"origin": ORIGIN, "tree_size": 7, "root_hash_b64": ROOT_B64, "note": _note(LEDGER)},
        LEDGER,
    )
    body = CheckpointSigned.model_validate(event.body)
    with pytest.raises(Exception) as info:
        REGISTRY["checkpoint.signed"].check(
            LedgerState(), EventContext(event, body, LEDGER.did), DEFAULT_RULE_SETTINGS
        )
    assert getattr(info.value, "code", None) is ReasonCode.SCHEMA_VALIDATION_FAILED


def _section_13() -> str:
    return DOC.split("## 13.")[1]


def test_formats_section_13_verifier_checks_the_worked_example() -> None:
    section = _section_13()
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/formats.md §13", "exec"), namespace)
    verify = namespace["verify_proof_file"]
    proof_text = re.findall(r"```json\n(\{\n.*?)```", section, flags=re.DOTALL)[0]
    document = json.loads(proof_text)
    public_key = example.KEY.public_key
    assert verify(document, example.ORIGIN, public_key) is True
    # the ledger's own verifier agrees
    result = verify_bytes(proof_text.encode(), ledger_key=example.KEY.did, origin=example.ORIGIN)
    assert result.valid, result
    # a leaf of another event, another index or another key does not verify
    other = json.loads(proof_text)
    other["inclusion"][0]["leaf"]["ledger_seq"] = 3
    assert verify(other, example.ORIGIN, public_key) is False
    other = json.loads(proof_text)
    other["inclusion"][0]["log_index"] = 3
    assert verify(other, example.ORIGIN, public_key) is False
    assert verify(document, example.ORIGIN, OTHER.public_key) is False
    assert verify(document, "other.example/log", public_key) is False


def test_formats_section_13_event_body_is_accepted_by_the_rule() -> None:
    body_text = re.findall(r"```json\n(\{\"origin\".*?)\n```", _section_13(), flags=re.DOTALL)[0]
    body = json.loads(body_text)
    golden = json.loads(example.EXAMPLE_FILE.read_text(encoding="utf-8"))
    assert body["note"] == golden["checkpoints"][1]["note"]
    event = build_event("checkpoint.signed", f"checkpoint:{body['origin']}", body, example.KEY)
    REGISTRY["checkpoint.signed"].check(
        LedgerState(),
        EventContext(event, CheckpointSigned.model_validate(body), example.KEY.did),
        DEFAULT_RULE_SETTINGS,
    )
