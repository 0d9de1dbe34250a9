"""The SDK's signing internals, pinned to their reference forms: the body encoder
(:func:`ledger.canonical.event_body_jcs`) to ``rfc8785`` byte for byte, the
envelope layout kept per key to ``envelope_bytes``, the payload parts kept per
(signer, type, stream) to the reference path, and the ids minted ahead to
``uuid4``'s form, never shared with a forked child."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.canonical import MAX_SAFE_INTEGER, event_body_jcs, plain_jcs_bytes
from ledger.crypto import KeyPair
from ledger.errors import EventError, ReasonCode
from ledger.events import new_event_id, sign_event_bytes

from ._canonical_support import (
    PROPERTY,
    any_ints,
    odd_values,
    outcome,
    plain_objects,
    texts,
    with_surrogates,
)
from ._sign_reference import AT, EVENT_ID, reference

#: the flat bodies the encoder's own path takes, and their neighbours it must hand on
flat_bodies = st.dictionaries(
    with_surrogates,
    st.one_of(st.none(), st.booleans(), any_ints, with_surrogates, st.floats()),
    max_size=10,
)


@PROPERTY
@given(st.one_of(flat_bodies, plain_objects, odd_values))
@example({"\ue000": 1, "\U0001f600": 2, "a": 3})
@example({"z": '\x00\x1f\b\f\n\r\t"\\/\x7f\u2028\u2029', "a": "é€\U0010ffff"})
@example({"n": MAX_SAFE_INTEGER, "m": -MAX_SAFE_INTEGER, "b": False, "z": None})
@example({"n": MAX_SAFE_INTEGER + 1})
@example({"s": "\udc00"})
@example({"\ud800": "lone key"})
@example({"f": 1.0})
@example({1: "int key"})
def test_body_bytes_are_rfc8785_or_nothing(value: Any) -> None:
    data = event_body_jcs(value)
    # exactly what the fast form the signing path used before vouches for
    assert data == plain_jcs_bytes(value)
    if data is not None:
        assert data == rfc8785.dumps(value)
    else:
        assert outcome(rfc8785.dumps, value)[0] == "raised" or _has_float(value)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(map(_has_float, value.values()))
    if isinstance(value, list | tuple):
        return any(map(_has_float, value))
    return False


@PROPERTY
@given(st.dictionaries(texts(), texts() | any_ints, min_size=2, max_size=8), st.randoms())
def test_one_key_set_in_any_insertion_order_gives_one_encoding(
    body: dict[str, Any], random: Any
) -> None:
    items = list(body.items())
    random.shuffle(items)
    assert event_body_jcs(dict(items)) == event_body_jcs(body)


class _Key(str):
    pass


def test_str_subclass_keys_take_the_reference_form_not_a_plan_for_str_keys() -> None:
    assert event_body_jcs({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    twin: dict[str, int] = {_Key("b"): 1, _Key("a"): 2}
    assert event_body_jcs(twin) == plain_jcs_bytes(twin) == rfc8785.dumps(twin)


KEY = KeyPair.from_seed(bytes(range(2, 34)), "runtime")
BODY = {"target": "*", "reason": "stop"}


@pytest.mark.parametrize(
    "issued_at", ["2026-02-12T00:00:01.500Z", 'a "quoted" time, é, \U0001f600', "\x00\x1f"]
)
def test_envelope_layout_per_key_is_envelope_bytes(issued_at: str) -> None:
    kw = {"event_id": EVENT_ID, "occurred_at": AT, "issued_at": issued_at}
    for key in (KEY, KeyPair.generate("other")):
        signed = sign_event_bytes(key, "agent.halted", "halt:*", BODY, **kw)
        expected = reference("agent.halted", "halt:*", BODY, **kw | {"key": key})
        assert signed == expected


def test_a_lone_surrogate_in_issued_at_is_refused_as_the_reference_refuses_it() -> None:
    kw = {"event_id": EVENT_ID, "occurred_at": AT, "issued_at": "\udc00"}
    assert outcome(lambda _: sign_event_bytes(KEY, "agent.halted", "halt:*", BODY, **kw), 0) == (
        outcome(lambda _: reference("agent.halted", "halt:*", BODY, **kw), 0)
    )


def test_payload_parts_are_kept_per_type_and_stream() -> None:
    kw = {"event_id": EVENT_ID, "occurred_at": AT}
    first = sign_event_bytes(KEY, "agent.halted", "halt:*", BODY, **kw)
    # the same stream under a type of another stream kind is still refused
    with pytest.raises(EventError) as misfiled:
        sign_event_bytes(KEY, "run.started", "halt:*", BODY, **kw)
    assert misfiled.value.code is ReasonCode.SCHEMA_VALIDATION_FAILED
    # a stream refused once is refused again, and does not spoil a good one
    for _ in range(2):
        with pytest.raises(EventError):
            sign_event_bytes(KEY, "agent.halted", "halt: *", BODY, **kw)
    assert sign_event_bytes(KEY, "agent.halted", "halt:*", BODY, **kw) == first
    other = KeyPair.generate("other")
    assert sign_event_bytes(other, "agent.halted", "halt:*", BODY, **kw) == reference(
        "agent.halted", "halt:*", BODY, **kw | {"key": other}
    )


_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_minted_ids_are_version_4_uuids_in_uuid4s_form_and_never_repeat() -> None:
    ids = [new_event_id() for _ in range(3_000)]
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        assert _UUID4.fullmatch(event_id), event_id
        parsed = uuid.UUID(event_id)
        assert str(parsed) == event_id and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    # every bit the version and variant leave free does vary
    assert {event_id[19] for event_id in ids} == set("89ab")
    assert {event_id[15] for event_id in ids} == set("0123456789abcdef")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_mints_ids_of_its_own() -> None:
    new_event_id()  # the parent holds ids minted ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, "\n".join(new_event_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    parent = {new_event_id() for _ in range(300)}
    assert len(child) == 50 and not child & parent
