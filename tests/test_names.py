"""Filter values that must name an event type or a reason code (claw_ledger.names)."""

from __future__ import annotations

import pytest

from claw_ledger.names import EVENT_TYPES, REASON_CODES, KnownNames, UnknownNameError
from ledger.errors import ReasonCode
from ledger.types import REGISTRY


def test_every_registered_event_type_and_reason_code_resolves_to_itself() -> None:
    for event_type in REGISTRY.event_types():
        assert EVENT_TYPES.resolve(event_type) == event_type
    for code in ReasonCode:
        assert REASON_CODES.resolve(code.value) == code.value


def test_a_name_in_another_case_is_the_known_spelling() -> None:
    assert EVENT_TYPES.resolve("Agent.HALTED") == "agent.halted"
    assert REASON_CODES.resolve("unknown_signer") == "UNKNOWN_SIGNER"


def test_an_unknown_name_names_the_close_ones_and_where_all_are_listed() -> None:
    with pytest.raises(UnknownNameError) as refused:
        EVENT_TYPES.resolve("agent.halt")
    message = str(refused.value)
    assert message.startswith("'agent.halt' is not a known event type; did you mean agent.halted")
    assert message.endswith("(all are listed in docs/architecture.md#event-types)")


def test_nothing_close_is_said_plainly_and_control_characters_are_shown_escaped() -> None:
    names = KnownNames("colour", lambda: ("red", "green"), "the palette")
    with pytest.raises(UnknownNameError) as refused:
        names.resolve("\u202equx\x1b")
    message = str(refused.value)
    assert "did you mean" not in message
    assert "\u202e" not in message and "\x1b" not in message
    assert message.endswith("is not a known colour (all are listed in the palette)")
