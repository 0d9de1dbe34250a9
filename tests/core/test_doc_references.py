"""The living docs name only files and Python names that exist.

README.md and docs/*.md describe the code as it is, so every repository path
and every dotted name they quote in backticks must resolve. ADRs are records
of a decision at its date and the CHANGELOG is history: they may name what
has since moved, and are not checked.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIVING_DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_PACKAGES = "ledger|consumers|producers|storage|claw_ledger|openclaw_policy"
_TOP = rf"(?:{_PACKAGES}|bench|tests|migrations|docs)"
#: `ledger/verify.py`, `claw_ledger/cli/{wpc,cst}.py`, `tests/contract/`
_PATH = re.compile(rf"`({_TOP}/[A-Za-z0-9_./{{}},*-]*)`")
#: `ledger.verify.check_signer`, `storage.protocol.LedgerStore()`
_DOTTED = re.compile(rf"`((?:{_PACKAGES})(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?`")


def _expand(path: str) -> list[str]:
    """``a/{b,c}.py`` → ``a/b.py``, ``a/c.py`` (the shell's braces, one level)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    head, tail = path[: match.start()], path[match.end() :]
    return [p for word in match.group(1).split(",") for p in _expand(head + word + tail)]


def _quoted_paths(text: str) -> set[str]:
    return {p.rstrip(".") for m in _PATH.finditer(text) for p in _expand(m.group(1))}


def _exists(path: str) -> bool:
    if "*" in path:
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: ModuleType | object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@pytest.mark.parametrize("doc", LIVING_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_quoted_paths_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert sorted(p for p in _quoted_paths(text) if not _exists(p)) == []


def test_the_patterns_find_what_the_map_quotes() -> None:
    """Guards the two tests above against patterns that match nothing."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "consumers/processor.py" in _quoted_paths(text)
    assert "storage.protocol.LedgerStore" in {m.group(1) for m in _DOTTED.finditer(text)}


@pytest.mark.parametrize("doc", LIVING_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_quoted_python_names_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    quoted = {m.group(1) for m in _DOTTED.finditer(text)}
    assert sorted(name for name in quoted if not _resolves(name)) == []
