"""Every worked example of docs/formats.md is recomputed from the code.

Each value is computed here and must also be quoted in the document, so the
spec and the code cannot drift apart silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.bundles import CHAIN_HASH_FIELDS, event_hash_b64u
from ledger.canonical import compact_json, jcs, parse_json_strict
from ledger.chain import chain_hash
from ledger.crypto import KeyPair
from ledger.encoding import b64u_decode, sha256_b64u, sha256_hex
from ledger.errors import ReasonCode
from ledger.tokens import scope_hash_input, token_scope_hash_b64u
from ledger.urm import approval_signing_bytes, urm_hash_b64u
from ledger.verify import Rejected, Verified, verify_message
from ledger.wpc import policy_hash_b64u
from openclaw_policy.attestation import policy_attestation_hash
from openclaw_policy.stable_json import stable_json

from ._helpers import (
    BUNDLE_PASS_RAW,
    EXAMPLES,
    GOLDEN,
    RFC8032_TEST1_SEED,
    example_key_registered,
    example_urm,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
#: prose is re-wrapped freely, so values are looked up with whitespace runs collapsed
DOC_FLAT = " ".join(DOC.split())
PRIMITIVE_GOLDEN = ROOT / "tests" / "primitives" / "golden"
GOLDEN_EVENT = (GOLDEN / "ledger_event_envelope.rfc8032-test1.key_registered.jcs.json").read_bytes()
ROOT_KEY = KeyPair.from_seed(RFC8032_TEST1_SEED)


def quoted(*values: str) -> None:
    missing = [value for value in values if " ".join(value.split()) not in DOC_FLAT]
    assert missing == [], "docs/formats.md does not quote these values"


def test_section_1_encodings() -> None:
    vector = EXAMPLES["rfc8032_test1"]
    assert ROOT_KEY.public_key.hex() == vector["public_hex"]
    assert ROOT_KEY.did == vector["did_key"]
    assert ROOT_KEY.sign(b"").hex() == vector["signature_of_empty_message_hex"]
    quoted(
        vector["seed_hex"],
        vector["public_hex"],
        vector["did_key"],
        vector["signature_of_empty_message_hex"],
        f"`{ROOT_KEY.kid}`",
    )


def test_section_2_golden_event_payload_hash_and_signature() -> None:
    envelope = parse_json_strict(GOLDEN_EVENT)
    payload_text = compact_json(envelope["payload"])
    assert payload_text == jcs(envelope["payload"])
    assert sha256_b64u(payload_text) == envelope["payload_hash_b64u"]
    ROOT_KEY.signing_key.verify_key.verify(
        envelope["payload_hash_b64u"].encode("ascii"), b64u_decode(envelope["signature_b64u"])
    )
    assert not GOLDEN_EVENT.endswith(b"\n")
    quoted(
        payload_text.decode(),
        envelope["payload_hash_b64u"],
        envelope["signature_b64u"],
        f"({len(GOLDEN_EVENT)} bytes, no trailing newline)",
    )


def test_section_2_document_order_of_the_vector_receipt() -> None:
    receipt = parse_json_strict(BUNDLE_PASS_RAW)["payload"]["receipts"][0]
    document_order = sha256_b64u(compact_json(receipt["payload"]))
    canonical_order = sha256_b64u(jcs(receipt["payload"]))
    assert document_order == receipt["payload_hash_b64u"] != canonical_order
    quoted(document_order, canonical_order)


def test_section_3_wpc_identity() -> None:
    vector = EXAMPLES["wpc_example"]
    assert jcs(vector["payload"]).decode() == vector["jcs"]
    assert policy_hash_b64u(vector["payload"]) == vector["policy_hash_b64u"]
    golden = json.loads((PRIMITIVE_GOLDEN / "wpc_envelope.json").read_bytes())
    assert golden["payload_hash_b64u"] == vector["policy_hash_b64u"]
    quoted(vector["jcs"], vector["policy_hash_b64u"])


def test_section_4_scope_hash_and_golden_token() -> None:
    vector = EXAMPLES["scope_example"]
    hash_input = jcs(scope_hash_input(vector["input"])).decode()
    assert token_scope_hash_b64u(vector["input"]) == vector["token_scope_hash_b64u"]
    header, claims, _ = (PRIMITIVE_GOLDEN / "cst.jwt").read_text().strip().split(".")
    header_text = b64u_decode(header).decode()
    claims_scope_hash = json.loads(b64u_decode(claims))["token_scope_hash_b64u"]
    assert header_text == f'{{"alg":"EdDSA","typ":"JWT","kid":"{ROOT_KEY.kid}"}}'
    quoted(hash_input, vector["token_scope_hash_b64u"], header_text, claims_scope_hash)


def test_section_5_receipt_hashes_of_exact_bytes() -> None:
    request = b'{"model":"claude-test","messages":[{"role":"user","content":"hi"}]}'
    response = b'{"content":[{"type":"text","text":"hello"}]}'
    golden = json.loads((PRIMITIVE_GOLDEN / "gateway_receipt.json").read_bytes())["payload"]
    assert golden["request_hash_b64u"] == sha256_b64u(request)
    assert golden["response_hash_b64u"] == sha256_b64u(response)
    quoted(request.decode(), response.decode(), sha256_b64u(request), sha256_b64u(response))


def test_section_6_bundle_entry_and_payload_hash() -> None:
    bundle = parse_json_strict(BUNDLE_PASS_RAW)
    entry = bundle["payload"]["event_chain"][0]
    hashed = compact_json({name: entry[name] for name in CHAIN_HASH_FIELDS}).decode()
    assert sha256_b64u(hashed.encode()) == event_hash_b64u(entry) == entry["event_hash_b64u"]
    payload_hash = sha256_b64u(compact_json(bundle["payload"]))
    assert payload_hash == bundle["payload_hash_b64u"]
    quoted(hashed, entry["event_hash_b64u"], payload_hash, bundle["payload"]["agent_did"])


def _golden_urm() -> dict[str, Any]:
    """The URM of tests/primitives/test_golden.py."""
    return example_urm(
        "job-golden",
        EXAMPLES["wpc_example"]["policy_hash_b64u"],
        EXAMPLES["scope_example"]["token_scope_hash_b64u"],
    )


def test_section_7_urm_hash_and_approval_bytes() -> None:
    digest = urm_hash_b64u(_golden_urm())
    approval = json.loads((PRIMITIVE_GOLDEN / "urm_approval.json").read_bytes())
    assert approval["urm_hash_b64u"] == digest
    message = approval_signing_bytes(digest, approval["approved_at"])
    ROOT_KEY.signing_key.verify_key.verify(message, b64u_decode(approval["signature_b64u"]))
    quoted(digest, message.decode("ascii").replace("\n", "\\n"))


def test_section_8_openclaw_hashes() -> None:
    vector = EXAMPLES["openclaw_policy_example"]
    evidence: dict[str, list[Any]] = {
        "channels": [],
        "mcpServers": [],
        "modelProviders": [],
        "modelRefs": [],
        "network": [],
    }
    rows = [(vector["policy"], vector["policy_hash"]), (evidence, None), ([], None)]
    hashes = []
    for value, expected in rows:
        text = stable_json(value)
        digest = "sha256:" + sha256_hex(text.encode("utf-8"))
        assert expected in (None, digest)
        quoted(f"| `{text}` | `{digest}` |")
        hashes.append(digest)
    attestation = policy_attestation_hash(
        ok=True, policy_hash=hashes[0], workspace_hash=hashes[1], findings_hash=hashes[2]
    )
    assert attestation == vector["attestation_hash"]
    quoted(attestation)
    keys = ["Zeta", "alpha", "allowSecurity", "allowlist", "ab", "a-b", "a_b", "_x"]
    order = list(json.loads(stable_json(dict.fromkeys(keys, 1))))
    quoted(", ".join(f"`{key}`" for key in order))


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        (b'"event_type":"key.registered"', b'"event_type":"key.nope"', "UNKNOWN_EVENT_TYPE"),
        (b'"name":"root"', b'"name":"root","x":1', "SCHEMA_VALIDATION_FAILED"),
        (b'"name":"root"', b'"name":1', "SCHEMA_VALIDATION_FAILED"),
        (b"-000000000001", b"-00000000000A", "SCHEMA_VALIDATION_FAILED"),
        (b'"stream":"key:', b'"stream":"job:', "SCHEMA_VALIDATION_FAILED"),
    ],
)
def test_section_9_payload_examples(old: bytes, new: bytes, code: str) -> None:
    assert isinstance(verify_message(GOLDEN_EVENT), Verified)
    verdict = verify_message(GOLDEN_EVENT.replace(old, new, 1))
    assert isinstance(verdict, Rejected)
    assert verdict.code == ReasonCode(code)


def _second_event() -> bytes:
    """The §10 example's second event: the trust root registers key 0x02 × 32."""
    policy_admin = KeyPair.from_seed(bytes([2]) * 32)
    envelope = example_key_registered(2, policy_admin, "policy-admin", ["policy-admin"], ROOT_KEY)
    quoted(policy_admin.did, envelope.payload_hash_b64u)
    return envelope.to_bytes()


def test_section_10_chain_worked_example() -> None:
    links: list[str] = []
    prev: str | None = None
    for seq, raw in enumerate((GOLDEN_EVENT, _second_event()), start=1):
        verdict = verify_message(raw)
        assert isinstance(verdict, Verified)
        envelope_sha256 = sha256_b64u(raw)
        assert verdict.envelope_sha256 == envelope_sha256
        text = jcs(
            {
                "envelope_sha256": envelope_sha256,
                "event_id": verdict.event.event_id,
                "ledger_seq": seq,
                "partition": 0,
                "prev": prev,
            }
        )
        link = chain_hash(prev, 0, seq, verdict.event.event_id, envelope_sha256)
        assert link == sha256_b64u(text)
        quoted(f"({len(raw)} bytes)" if seq == 1 else f"Its {len(raw)} JCS envelope bytes")
        quoted(envelope_sha256, text.decode(), link)
        links.append(link)
        prev = link
    assert len(set(links)) == 2


def test_section_11_size_limit_boundary() -> None:
    padded = GOLDEN_EVENT + b" " * (1_048_576 - len(GOLDEN_EVENT))
    assert isinstance(verify_message(padded), Verified)
    verdict = verify_message(padded + b" ")
    assert isinstance(verdict, Rejected) and verdict.code is ReasonCode.OVERSIZED
    quoted("more than 1 048 576 bytes (1 MiB) → `OVERSIZED`. Exactly 1 MiB passes.")
