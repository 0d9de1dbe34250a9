"""A clone of the repository alone is enough: nothing it holds points outside it.

Also: the reason codes and the "formats.md §N" citations agree with
docs/formats.md, and the reference vectors are unchanged.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from ledger.errors import ReasonCode

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ROOT / "docs" / "formats.md"
VECTORS = ROOT / "tests" / "vectors"

#: the changelog records history, including where things used to live
EXEMPT = frozenset({"CHANGELOG.md"})
#: the reference folder beside a checkout; spelt indirectly so that this file does not match itself
_SIBLING = "SHARED".lower()
FORBIDDEN = (f"../{_SIBLING}", f"{_SIBLING}/vectors", f"{_SIBLING}/specs", f"{_SIBLING}/seeds")
_PRUNED_DIRS = frozenset({".git", ".venv", "venv", "__pycache__", "node_modules", "build", "dist"})


def _repository_files() -> list[Path]:
    """Tracked files plus new ones not ignored (a clone without git: every file)."""
    try:
        listing = subprocess.run(
            [
                "git",
                "-C",
                str(ROOT),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            check=True,
            capture_output=True,
        ).stdout
        names = [name for name in listing.decode("utf-8").split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = []
        for directory, subdirs, files in os.walk(ROOT):
            subdirs[:] = [
                d
                for d in subdirs
                if d not in _PRUNED_DIRS and not d.startswith(".") and not d.endswith(".egg-info")
            ]
            names.extend(str(Path(directory, f).relative_to(ROOT)) for f in files)
    # a tracked file deleted in the work tree is not part of what a clone would test
    return sorted(ROOT / name for name in names if (ROOT / name).is_file())


def _text_files() -> list[tuple[Path, str]]:
    out = []
    for path in _repository_files():
        if path.relative_to(ROOT).as_posix() in EXEMPT:
            continue
        try:
            out.append((path, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # binary files hold no paths we read
    return out


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


# --- nothing outside the repository ----------------------------------------------


def test_the_file_listing_sees_this_repository() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in _repository_files()}
    assert {"pyproject.toml", "docs/formats.md", "tests/vectors/examples.json"} <= names


def test_no_file_names_the_shared_reference_directory() -> None:
    hits = [
        f"{_where(path, text, match.start())}: {fragment}"
        for path, text in _text_files()
        for fragment in FORBIDDEN
        for match in re.finditer(re.escape(fragment), text)
    ]
    assert hits == []


def _levels_up(node: ast.AST) -> int | None:
    """How many directories ``node`` climbs from ``__file__``; ``None`` when unrelated.

    ``Path(__file__)`` (optionally ``.resolve()``/``.absolute()``) is 0, each
    ``.parent`` adds one, ``.parents[n]`` adds n + 1; ``os.path.dirname`` adds one.
    """
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _levels_up(node.value)
        return None if inner is None else inner + 1
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, int)
    ):
        inner = _levels_up(node.value.value)
        return None if inner is None else inner + node.slice.value + 1
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("resolve", "absolute") and isinstance(func, ast.Attribute) and not node.args:
            return _levels_up(func.value)
        if name in ("Path", "PurePath", "abspath", "realpath") and len(node.args) == 1:
            return _levels_up(node.args[0])
        if name == "dirname" and len(node.args) == 1:
            inner = _levels_up(node.args[0])
            return None if inner is None else inner + 1
    return None


def _escaping_paths(relative: Path, source: str) -> list[int]:
    """Line numbers of ``__file__``-relative paths that leave the repository root."""
    depth = len(relative.parts)  # climbing this many levels reaches the root itself
    lines = []
    for node in ast.walk(ast.parse(source)):
        levels = _levels_up(node)
        if levels is not None and levels > depth:
            lines.append(getattr(node, "lineno", 0))
    return sorted(set(lines))


@pytest.mark.parametrize(
    ("source", "escapes"),
    [
        ('ROOT = Path(__file__).resolve().parents[2].parent / "elsewhere"', True),
        ('X = Path(__file__).resolve().parents[3] / "elsewhere"', True),
        ("X = dirname(dirname(dirname(dirname(os.path.abspath(__file__)))))", True),
        ("X = dirname(dirname(dirname(os.path.abspath(__file__))))", False),
        ('X = Path(__file__).parent.parent.parent.parent / "x"', True),
        ("ROOT = Path(__file__).resolve().parents[2]", False),
        ('X = Path(__file__).resolve().parents[1] / "vectors"', False),
        ("X = os.path.dirname(__file__)", False),
    ],
)
def test_escape_detector(source: str, escapes: bool) -> None:
    found = _escaping_paths(Path("tests/core/example.py"), source)
    assert bool(found) is escapes


def test_no_python_file_climbs_above_the_repository_root() -> None:
    hits: list[str] = []
    for path, text in _text_files():
        if path.suffix == ".py":
            relative = path.relative_to(ROOT)
            hits.extend(f"{relative}:{line}" for line in _escaping_paths(relative, text))
    assert hits == []


_MD_LINK = re.compile(r"\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def test_markdown_links_stay_inside_the_repository() -> None:
    hits = []
    for path, text in _text_files():
        if path.suffix != ".md":
            continue
        for match in _MD_LINK.finditer(text):
            target = (match.group(1) or match.group(2)).split("#", 1)[0]
            if not target or re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # an anchor in the same page, or a URL
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                hits.append(f"{_where(path, text, match.start())}: {target}")
    assert hits == []


# --- the vectors -------------------------------------------------------------------


def test_vectors_are_the_reference_bytes() -> None:
    readme = (VECTORS / "README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| `([^`]+\.json)` \| `([0-9a-f]{64})` \|$", readme, re.MULTILINE))
    present = {path.name for path in VECTORS.glob("*.json")}
    assert present and set(listed) == present
    for name, digest in listed.items():
        assert hashlib.sha256((VECTORS / name).read_bytes()).hexdigest() == digest, name


# --- docs/formats.md -----------------------------------------------------------------

_HEADING = re.compile(r"^## (\d+)\. (.+)$", re.MULTILINE)


def _sections() -> dict[int, str]:
    text = FORMATS.read_text(encoding="utf-8")
    headings = list(_HEADING.finditer(text))
    return {
        int(h.group(1)): text[h.end() : headings[i + 1].start() if i + 1 < len(headings) else None]
        for i, h in enumerate(headings)
    }


def test_formats_md_sections_are_numbered_from_one_without_a_gap() -> None:
    sections = list(_sections())
    assert sections == list(range(1, len(sections) + 1))
    assert len(sections) >= 13  # §12 reason codes, §13 the transparency log


def test_every_reason_code_is_documented_in_section_12() -> None:
    documented = re.findall(r"^\| `([A-Z_]+)` \|", _sections()[12], re.MULTILINE)
    assert len(documented) == len(set(documented)), "a code is documented twice"
    assert set(documented) == {code.value for code in ReasonCode}


# "formats.md §2", "formats.md §1, §4", "`docs/formats.md` §3–§7", "[formats.md](formats.md) §8"
_CITATION = re.compile(r"formats\.md[`\])]*[ \t]*((?:§\d+(?:[ \t]*(?:[–,-]|and)[ \t]*)?)+)")
_SELF_REFERENCE = re.compile(r"(?<!RFC \d{4} )(?<!RFC \d{3} )§(\d+)")


def _citations() -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for path, text in _text_files():
        for match in _CITATION.finditer(text):
            found.extend(
                (_where(path, text, match.start()), int(n))
                for n in re.findall(r"§(\d+)", match.group(1))
            )
        if path == FORMATS:
            found.extend(
                (_where(path, text, m.start()), int(m.group(1)))
                for m in _SELF_REFERENCE.finditer(text)
            )
    return found


def test_formats_md_citations_name_existing_sections() -> None:
    citations = _citations()
    # the code cites the spec throughout; finding none would mean the pattern broke
    assert len(citations) > 30
    sections = set(_sections())
    assert [f"{where}: §{n}" for where, n in citations if n not in sections] == []
