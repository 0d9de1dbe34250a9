"""Offline verification of a sealed bundle's seal (docs/formats.md §6.1, ADR 0019).

:func:`verify_seal` runs :data:`SEAL_STEPS` on a bundle payload that passed the
clawsig steps (:func:`ledger.bundles.verify_proof_bundle`); the first failing
step decides the reason code. The run's facts are derived from the proven
events by :func:`ledger.run_facts.run_facts`, the fold the sealer used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from ledger.canonical import compact_json, jcs_hash_b64u, parse_json_strict
from ledger.checkpoint import Checkpoint, NoteVerifier, open_note, parse_note
from ledger.encoding import sha256_b64u
from ledger.errors import CheckpointError, ReasonCode, RejectedError
from ledger.log_proofs import b64_hash
from ledger.merkle import InclusionVerifier
from ledger.run_facts import RunFacts, run_facts, run_streams
from ledger.sealed_bundles import SEAL_VERSION
from ledger.tlog import EventLeaf
from ledger.wpc import verify_wpc_envelope

__all__ = [
    "SEAL_STEPS",
    "InclusionAnswer",
    "ProofsElsewhere",
    "SealCheck",
    "SealOutcome",
    "inclusion_answer",
    "verify_seal",
]

#: the steps of :func:`verify_seal`, in order (after the clawsig bundle steps)
SEAL_STEPS: tuple[str, ...] = (
    "seal shape",
    "checkpoint signed by the ledger key",
    "each event is in the checkpoint's tree",
    "bundle sealed by the ledger (or by the run's agent, when accepted)",
    "event chain and receipts are the run's ledger events",
    "URM is the approved one",
    "WPC is the run's signed policy",
    "token scope hash is the URM's",
    "decisions, halt windows and outputs are the events'",
    "every authorized model call has a receipt",
)
_SEAL_KEYS = frozenset(
    {
        "seal_version",
        "job_id",
        "run_status",
        "trigger",
        "sealed_at",
        "ledger_did",
        "agent_did",
        "urm",
        "wpc_envelope",
        "token",
        "decisions",
        "halts",
        "outputs",
        "counts",
        "checkpoint",
        "events",
    }
)
_EVENT_KEYS = frozenset({"envelope", "log_index", "leaf", "proof_b64"})
_LEAF_KEYS = frozenset({"partition", "ledger_seq", "event_id", "envelope_sha256", "chain_hash"})


#: the tree (size, root hash) against which every event of a bundle was proven
#: elsewhere (:func:`inclusion_answer`)
InclusionAnswer = tuple[int, bytes]
#: asked at the inclusion step for that answer (``None``: none to give)
ProofsElsewhere = Callable[[], InclusionAnswer | None]


@dataclass(frozen=True, slots=True)
class SealCheck:
    name: str
    code: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.code == ReasonCode.OK.value


class SealOutcome(NamedTuple):
    """What :func:`verify_seal` found: its checks in order, the run's facts (``None``
    when a check failed), and who sealed it (``ledger`` or ``agent``)."""

    checks: list[SealCheck]
    facts: RunFacts | None
    sealed_by: str | None


class _Fail(Exception):
    def __init__(self, code: ReasonCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _require(condition: bool, code: ReasonCode, detail: str) -> None:
    if not condition:
        raise _Fail(code, detail)


def _shape(seal: Any) -> None:
    code = ReasonCode.SCHEMA_VALIDATION_FAILED
    _require(isinstance(seal, Mapping), code, "seal must be an object")
    unknown = sorted(set(seal) - _SEAL_KEYS)
    missing = sorted(_SEAL_KEYS - set(seal))
    _require(not unknown, code, f"seal has unknown member(s) {unknown}")
    _require(not missing, code, f"seal lacks {missing}")
    _require(seal["seal_version"] == SEAL_VERSION, code, 'seal_version must be "1"')
    _require(isinstance(seal["checkpoint"], str), code, "seal.checkpoint must be the note text")
    events = seal["events"]
    _require(isinstance(events, list) and bool(events), code, "seal.events must be a list")
    for index, entry in enumerate(events):
        where = f"seal.events[{index}]"
        _require(isinstance(entry, Mapping), code, f"{where} must be an object")
        _require(set(entry) == _EVENT_KEYS, code, f"{where} has exactly {sorted(_EVENT_KEYS)}")
        _require(isinstance(entry["envelope"], str), code, f"{where}.envelope must be text")
        _require(
            type(entry["log_index"]) is int and entry["log_index"] >= 0,
            code,
            f"{where}.log_index must be an integer >= 0",
        )
        _require(isinstance(entry["proof_b64"], list), code, f"{where}.proof_b64 must be a list")
    for name in ("decisions", "halts"):
        _require(isinstance(seal[name], list), code, f"seal.{name} must be a list")


def _checkpoint(
    note: str, public_key: bytes | None, key_name: str | None, origin: str | None
) -> tuple[Checkpoint, str]:
    if public_key is None:
        raise _Fail(
            ReasonCode.CHECKPOINT_KEY_UNKNOWN,
            "the ledger key is not pinned, so nothing shows the ledger signed this"
            " checkpoint; pass the ledger's did:key with --ledger-key",
        )
    try:
        raw = note.encode("utf-8")
        expected = origin or key_name or Checkpoint.parse(parse_note(raw).text).origin
        verifier = NoteVerifier(expected, public_key)
        opened, _ = open_note(raw, [verifier])
        checkpoint = Checkpoint.parse(opened.text)
    except CheckpointError as exc:
        raise _Fail(exc.code, exc.detail) from exc
    except ValueError as exc:
        raise _Fail(ReasonCode.CHECKPOINT_MALFORMED, str(exc)) from exc
    _require(
        checkpoint.origin == expected,
        ReasonCode.CHECKPOINT_ORIGIN_MISMATCH,
        f"checkpoint of {checkpoint.origin!r}, expected {expected!r}",
    )
    return checkpoint, verifier.did


def _leaf(entry: Mapping[str, Any], where: str) -> EventLeaf:
    fields = entry["leaf"]
    if not isinstance(fields, Mapping) or set(fields) != _LEAF_KEYS:
        raise _Fail(ReasonCode.LEAF_MALFORMED, f"{where}.leaf has {sorted(_LEAF_KEYS)}")
    return EventLeaf(**fields)


def _decoded(items: Sequence[Any], nodes: dict[str, bytes], where: str) -> list[bytes]:
    """A proof's hashes, each decoded once across the bundle (``nodes``)."""
    proof = []
    for i, item in enumerate(items):
        try:
            node = nodes[item]
        except (KeyError, TypeError):  # new, or not text (b64_hash names the fault)
            node = b64_hash(item, ReasonCode.INCLUSION_PROOF_INVALID, f"{where}[{i}]")
            nodes[item] = node
        proof.append(node)
    return proof


#: a fault of one event: (its index, which half found it, code, detail); the lowest wins
_Fault = tuple[int, int, str, str]
_PROOF_HALF, _PARSE_HALF = 0, 1


def _proof_fault(events: Sequence[Mapping[str, Any]], checkpoint: Checkpoint) -> _Fault | None:
    """The first event that is out of log order, whose leaf is malformed or names
    other bytes, or whose proof does not lead to the checkpoint's root."""
    previous = -1
    # the upper nodes of the tree recur in every proof: decode each once, hash each once
    nodes: dict[str, bytes] = {}
    tree = InclusionVerifier(checkpoint.size, checkpoint.root_hash)
    for index, entry in enumerate(events):
        try:
            _proven(entry, previous, nodes, tree, f"seal.events[{index}]")
        except _Fail as failure:
            return index, _PROOF_HALF, failure.code.value, failure.detail
        previous = entry["log_index"]
    return None


def _proven(
    entry: Mapping[str, Any],
    previous: int,
    nodes: dict[str, bytes],
    tree: InclusionVerifier,
    where: str,
) -> None:
    _require(
        entry["log_index"] > previous,
        ReasonCode.SCHEMA_VALIDATION_FAILED,
        f"{where}: events are listed once each, in log order",
    )
    leaf = _leaf(entry, where)
    _require(
        leaf.envelope_sha256 == sha256_b64u(str(entry["envelope"]).encode("utf-8")),
        ReasonCode.INCLUSION_PROOF_INVALID,
        f"{where}: the envelope is not the one its leaf names (SHA-256)",
    )
    try:
        tree.verify(entry["log_index"], leaf.hash(), _decoded(entry["proof_b64"], nodes, where))
    except RejectedError as exc:
        raise _Fail(exc.code, f"{where} (event {leaf.event_id}): {exc.detail}") from exc


def _parsed(events: Sequence[Mapping[str, Any]]) -> tuple[list[Any], _Fault | None]:
    """Each envelope parsed, and the first that is not an event or not the one its
    leaf names. A malformed leaf is the other half's to report (it comes first)."""
    documents: list[Any] = []
    for index, entry in enumerate(events):
        where = f"seal.events[{index}]"
        try:
            # bytes the log holds were parsed strictly by the ledger at ingress (no
            # duplicate key, no integer beyond 2**53, no lone surrogate), and orjson
            # reads such bytes as json does; an event whose proof fails is reported
            # for its proof, which comes first
            document = orjson.loads(str(entry["envelope"]))
            payload = document["payload"]
            event_id = payload["event_id"]
            if not {"event_type", "stream", "body"} <= payload.keys():
                raise KeyError("event_type, stream or body")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            code = ReasonCode.SCHEMA_VALIDATION_FAILED.value
            return documents, (index, _PARSE_HALF, code, f"{where}.envelope is not an event: {exc}")
        leaf = entry["leaf"]
        named = leaf.get("event_id") if isinstance(leaf, Mapping) else None
        if named != event_id:
            detail = f"{where}: the leaf names event {named}, the envelope is {event_id}"
            return documents, (index, _PARSE_HALF, ReasonCode.INCLUSION_PROOF_INVALID.value, detail)
        documents.append(document)
    return documents, None


def inclusion_answer(raw: bytes) -> InclusionAnswer | None:
    """The tree that every event of the sealed bundle ``raw`` is proven in, checked
    from its bytes alone; ``None`` when not every one is (or ``raw`` is no bundle).

    What another process can work out while this one parses ``raw`` strictly
    and checks the rest (``verify_bytes(..., background=...)``). The answer is
    used only once the strict parse accepted the same bytes and the steps
    before the proofs passed; on such bytes this faster parse gives the same
    values wherever the proofs look, or fails. Only "all proven" is answered:
    a fault is worked out again where it is reported, so its detail is exact.
    """
    try:
        seal = orjson.loads(raw)["payload"]["seal"]
        checkpoint = Checkpoint.parse(parse_note(str(seal["checkpoint"]).encode("utf-8")).text)
        if _proof_fault(seal["events"], checkpoint) is None:
            return checkpoint.size, checkpoint.root_hash
    except Exception:  # whatever it is, the steps in order report it
        pass
    return None


def _included(
    events: Sequence[Mapping[str, Any]],
    checkpoint: Checkpoint,
    proofs: ProofsElsewhere | None,
) -> list[Any]:
    """Each envelope hashes to its leaf, and the leaf is in the tree; the parsed envelopes.

    The proofs and the parse are independent halves, checked one after the
    other or (``proofs``) the proofs elsewhere meanwhile; the verdict is the
    one checking event by event gives, the proof of an event before its parse.
    """
    documents, parse_fault = _parsed(events)
    if proofs is not None and proofs() == (checkpoint.size, checkpoint.root_hash):
        proof_fault = None
    else:  # no answer, a fault, or another tree: work it out here
        proof_fault = _proof_fault(events, checkpoint)
    faults = [fault for fault in (proof_fault, parse_fault) if fault is not None]
    if faults:
        _, _, code, detail = min(faults)
        raise _Fail(ReasonCode(code), detail)
    return documents


def _bound(payload: Mapping[str, Any], facts: RunFacts, documents: Sequence[Any]) -> None:
    seal = payload["seal"]
    code = ReasonCode.BUNDLE_NOT_BOUND
    job_id = str(seal["job_id"])
    _require(facts.manifest is not None, code, f"no run.manifest_approved of {job_id}")
    token = facts.token_summary()
    streams = run_streams(
        job_id,
        jti=None if facts.started is None else str(facts.started["body"]["cst_jti"]),
        wpc=None if facts.urm is None else str(facts.urm["policy"]["wpc_hash_b64u"]),
        sub=None if token is None else str(token["sub"]),
    )
    for document in documents:
        event = document["payload"]
        _require(
            event["stream"] in streams,
            code,
            f"event {event['event_id']} ({event['event_type']} on {event['stream']}) is not"
            f" an event of run {job_id}",
        )
    chain = payload["event_chain"]
    _require(str(chain[0]["run_id"]) == job_id, code, f"the chain is of run {chain[0]['run_id']}")
    for index, entry in enumerate(chain):
        _require(
            index < len(facts.chain) and dict(entry) == facts.chain[index],
            code,
            f"event_chain[{index}] is not the entry of the run's logged event"
            f" {entry.get('event_id')}",
        )
    _require(
        len(chain) == len(facts.chain),
        code,
        f"the chain has {len(chain)} entries, the run's logged lifecycle {len(facts.chain)}",
    )
    receipts = list(payload.get("receipts", []))
    logged = [receipt for _, receipt in facts.receipts]
    for index, receipt in enumerate(receipts):
        _require(
            index < len(logged) and receipt == logged[index],
            code,
            f"receipts[{index}] is not a receipt recorded on the ledger for {job_id}",
        )
    _require(
        len(receipts) == len(logged),
        code,
        f"{len(logged)} receipts are recorded for {job_id}, the bundle lists {len(receipts)}",
    )


def _urm(payload: Mapping[str, Any], facts: RunFacts) -> None:
    code = ReasonCode.BUNDLE_URM_MISMATCH
    seal = payload["seal"]
    assert facts.manifest is not None
    recorded = facts.manifest["body"]
    urm_hash = jcs_hash_b64u(seal["urm"]) if isinstance(seal["urm"], Mapping) else None
    _require(
        urm_hash == recorded["urm_hash_b64u"] and seal["urm"] == recorded["urm"],
        code,
        f"seal.urm hashes to {urm_hash}, the approved URM is {recorded['urm_hash_b64u']}",
    )
    reference = payload.get("urm") or {}
    _require(
        reference.get("resource_hash_b64u") == urm_hash,
        code,
        "the bundle's urm reference names another URM hash",
    )
    if facts.started is not None:
        _require(
            facts.started["body"]["urm_hash_b64u"] == urm_hash,
            code,
            "run.started names another URM than the approved one",
        )


def _wpc(seal: Mapping[str, Any], facts: RunFacts) -> None:
    code = ReasonCode.BUNDLE_WPC_MISMATCH
    assert facts.urm is not None
    expected = str(facts.urm["policy"]["wpc_hash_b64u"])
    try:
        verified = verify_wpc_envelope(seal["wpc_envelope"])
    except RejectedError as exc:
        raise _Fail(code, f"seal.wpc_envelope: {exc.code}: {exc.detail}") from exc
    _require(
        verified.policy_hash_b64u == expected,
        code,
        f"seal.wpc_envelope is WPC {verified.policy_hash_b64u}, the URM's is {expected}",
    )
    if facts.policy_published is not None:
        published = parse_json_strict(
            str(facts.policy_published["body"]["wpc_envelope_json"]).encode("utf-8")
        )
        _require(
            compact_json(published) == compact_json(seal["wpc_envelope"]),
            code,
            "seal.wpc_envelope is not the envelope published on the ledger",
        )
    token = facts.token_summary()
    if token is not None and token["policy_hash_b64u"] is not None:
        _require(
            token["policy_hash_b64u"] == expected,
            code,
            f"the token is pinned to WPC {token['policy_hash_b64u']}, the run's is {expected}",
        )
    _receipts_bound_to(facts, "policy_hash", expected, code, "WPC")


def _receipts_bound_to(
    facts: RunFacts, binding: str, expected: str, code: ReasonCode, what: str
) -> None:
    """Every receipt that names a ``binding`` names the run's ``expected`` one."""
    for index, (_, receipt) in enumerate(facts.receipts):
        named = receipt["payload"]["binding"].get(binding)
        _require(
            named is None or named == expected,
            code,
            f"receipts[{index}] is bound to {what} {named}, the run's is {expected}",
        )


def _scope(seal: Mapping[str, Any], facts: RunFacts) -> None:
    code = ReasonCode.BUNDLE_SCOPE_MISMATCH
    assert facts.urm is not None
    expected = str(facts.urm["policy"]["cst_scope_hash"])
    token = facts.token_summary()
    _require(
        seal["token"] == token,
        code,
        "seal.token is not the token.issued of the run's token (jti, scope or token hash)",
    )
    if token is None:
        _require(facts.started is None, code, "the run started, but its token.issued is missing")
        return
    _require(
        token["token_scope_hash_b64u"] == expected,
        code,
        f"the token's scope hash {token['token_scope_hash_b64u']} is not the URM's {expected}",
    )
    _receipts_bound_to(facts, "token_scope_hash_b64u", expected, code, "scope hash")


def _summaries(seal: Mapping[str, Any], facts: RunFacts) -> None:
    expected = {
        "job_id": facts.job_id,
        "run_status": facts.status(),
        "agent_did": facts.agent_did,
        "decisions": facts.decisions,
        "halts": facts.halts,
        "outputs": facts.outputs,
        "counts": facts.counts(),
    }
    for name, value in expected.items():
        _require(
            seal[name] == value,
            ReasonCode.BUNDLE_NOT_BOUND,
            f"seal.{name} is not what the run's logged events say",
        )


def _model_receipts(facts: RunFacts) -> str:
    allowed = Counter(
        (str(d["action"].get("provider")), str(d["action"].get("model")))
        for d in facts.decisions
        if d["allowed"] and isinstance(d["action"], Mapping) and d["action"].get("kind") == "model"
    )
    receipted = Counter(
        (str(r["payload"]["provider"]), str(r["payload"]["model"])) for _, r in facts.receipts
    )
    for (provider, model), count in sorted(allowed.items()):
        _require(
            receipted[(provider, model)] >= count,
            ReasonCode.BUNDLE_RECEIPT_MISSING,
            f"{count} model calls to {provider}/{model} were authorized, only"
            f" {receipted[(provider, model)]} have a gateway receipt",
        )
    total = sum(allowed.values())
    return f"{total} authorized model calls, each with a receipt" if total else "no model call"


def verify_seal(
    payload: Mapping[str, Any],
    *,
    ledger_public_key: bytes | None,
    key_name: str | None = None,
    origin: str | None = None,
    proofs: ProofsElsewhere | None = None,
    accept_agent_seal: bool = False,
) -> SealOutcome:
    """Run :data:`SEAL_STEPS` on a clawsig-verified bundle payload; stop at the first failure.

    ``ledger_public_key`` is the pinned ledger key (``None``: not pinned, and
    the checkpoint step fails closed with ``CHECKPOINT_KEY_UNKNOWN``).
    ``proofs`` gives :func:`inclusion_answer` of the same bundle's bytes when
    it was worked out elsewhere (``None``: the proofs are checked here).
    ``accept_agent_seal``: the run's agent may have sealed it. Only the ledger
    holds every event of the run, so only its seal vouches that none was left
    out; an agent's seal proves what the bundle holds and nothing about what it
    does not (its own denials and halts), and is refused unless accepted.
    """
    checks: list[SealCheck] = []
    facts: RunFacts | None = None
    seal: Any = payload.get("seal")
    state: dict[str, Any] = {}

    def shape() -> str:
        _shape(seal)
        return ""

    def checkpoint() -> str:
        state["checkpoint"], state["ledger_did"] = _checkpoint(
            seal["checkpoint"], ledger_public_key, key_name, origin
        )
        return f"tree size {state['checkpoint'].size}, ledger {state['ledger_did']}"

    def inclusion() -> str:
        nonlocal facts
        state["documents"] = _included(seal["events"], state["checkpoint"], proofs)
        facts = run_facts(str(seal["job_id"]), [d["payload"] for d in state["documents"]])
        return f"{len(state['documents'])} events"

    def signer() -> str:
        assert facts is not None
        agent = str(payload["agent_did"])
        if agent == state["ledger_did"]:
            state["sealed_by"] = "ledger"
            return "the ledger"
        _require(
            agent == facts.agent_did,
            ReasonCode.BUNDLE_SIGNER_NOT_ALLOWED,
            f"signed by {agent}: neither the ledger key {state['ledger_did']} nor the"
            f" run's agent {facts.agent_did}",
        )
        _require(
            accept_agent_seal,
            ReasonCode.BUNDLE_SIGNER_NOT_ALLOWED,
            f"sealed by the run's agent {agent}, not the ledger {state['ledger_did']}:"
            " only the ledger's seal vouches that no event of the run (a denial, a halt,"
            " a receipt) is left out; an agent's seal is checked only when accepted",
        )
        state["sealed_by"] = "agent"
        return "the run's agent: what the bundle holds, not that it holds everything"

    def with_facts(check: Callable[[RunFacts], Any]) -> Callable[[], str]:
        def run() -> str:
            assert facts is not None
            result = check(facts)
            return result if isinstance(result, str) else ""

        return run

    actions: list[Callable[[], str]] = [
        shape,
        checkpoint,
        inclusion,
        signer,
        with_facts(lambda f: _bound(payload, f, state["documents"])),
        with_facts(lambda f: _urm(payload, f)),
        with_facts(lambda f: _wpc(seal, f)),
        with_facts(lambda f: _scope(seal, f)),
        with_facts(lambda f: _summaries(seal, f)),
        with_facts(_model_receipts),
    ]
    for name, action in zip(SEAL_STEPS, actions, strict=True):
        try:
            detail = action()
        except _Fail as failure:
            checks.append(SealCheck(name, failure.code.value, failure.detail))
            return SealOutcome(checks, None, None)
        checks.append(SealCheck(name, ReasonCode.OK.value, detail))
    return SealOutcome(checks, facts, state["sealed_by"])
