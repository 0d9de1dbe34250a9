"""docs/architecture.md is the map: it names every reason code and every event type."""

from __future__ import annotations

import re
from pathlib import Path

from ledger.errors import ReasonCode
from ledger.types import REGISTRY

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _section(title: str) -> str:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_reason_code_is_on_the_map() -> None:
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", _section("Reason codes")))
    codes = {code.value for code in ReasonCode}
    assert codes - listed == set(), "add these codes to docs/architecture.md"
    assert listed - codes == set(), "these codes in docs/architecture.md do not exist"


def test_every_event_type_has_a_family_row() -> None:
    families = _section("Event types").split("| family module | event types |")[1]
    cells = re.findall(r"`([a-z_]+\.[a-z_]+)`", families.split("\n\n")[0])
    named = {cell for cell in cells if not cell.endswith(".py")}
    assert named == set(REGISTRY.event_types())
