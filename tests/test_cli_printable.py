"""What the CLI shows of ledger text on a terminal (``claw_ledger.cli.common``)."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from claw_ledger.cli.common import echo, plain, print_table, printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("halt: runaway agent", "halt: runaway agent"),
        ("café 漢字 😀 did:key:z6Mk [/x]", "café 漢字 😀 did:key:z6Mk [/x]"),
        ("a\x1b[8mhidden\x1b[0m", "a\\u001b[8mhidden\\u001b[0m"),  # conceal
        ("\x1b]0;title\x07", "\\u001b]0;title\\u0007"),  # window title, bell
        ("ok\rforged", "ok\\u000dforged"),  # carriage return overwrites the line
        ("\x00\x08\x7f", "\\u0000\\u0008\\u007f"),
        ("\x9b2J", "\\u009b2J"),  # the one-byte C1 control sequence introducer
        ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
        ("\u2066x\u2069\u200f", "\\u2066x\\u2069\\u200f"),
        ("one\ntwo\tthree", "one\\u000atwo\\u0009three"),  # a single value: one line
    ],
)
def test_a_value_is_shown_with_its_controls_written_out(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert plain(text).plain == shown


def test_lines_keep_their_breaks_and_tabs() -> None:
    assert printable("one\ntwo\tthree\x1b[2J", lines=True) == "one\ntwo\tthree\\u001b[2J"


@click.command()
def _echo_ledger_text() -> None:
    """Echoes ledger text, then bytes (a file's content)."""
    echo("why: x\x1b[8my\nsecond line")
    echo(b"raw\x1b")


def test_echo_writes_text_printable_and_bytes_as_they_are() -> None:
    result = CliRunner().invoke(_echo_ledger_text, [])
    assert result.output == "why: x\\u001b[8my\nsecond line\n" + "raw\x1b\n"


def test_json_passed_through_stays_valid_and_means_the_same() -> None:
    """Proof files and bundles are printed as JSON with their characters as they
    are (``ensure_ascii=False``); what printable writes out is JSON's own escape."""
    document = {"reason": "a\x1b[8mb\x85c\u202ed\u2066é😀\n\t", "list": ["\x9b", "\x00"]}
    for text in (
        json.dumps(document, ensure_ascii=False, indent=2),
        json.dumps(document, ensure_ascii=False, separators=(",", ":")),
    ):
        shown = printable(text, lines=True)
        assert json.loads(shown) == document
        assert not any(ch in shown for ch in "\x1b\x85\u202e\u2066\x9b\x00")


def test_a_timeline_table_shortens_the_keys_in_streams() -> None:
    from claw_ledger.cli.timeline import shorten_keys

    did = "did:key:z6MkqpfK8NkBd5RrGFhpfPeLS881d5MFcarirUFg9mRYp56w"
    assert shorten_keys(f"key:{did}") == "key:did:key:z6Mkqp…9mRYp56w"
    assert shorten_keys(f"{did} and {did[:-1]}X") == (
        "did:key:z6Mkqp…9mRYp56w and did:key:z6Mkqp…9mRYp56X"
    )
    # not a key, or too short to be one: as it is
    for text in ("job:demo-1", "did:key:z6Mkqp", "did:web:example.com", "key:did:key:0OIl" * 3):
        assert shorten_keys(text) == text


_COLUMNS = ("pos", "occurred_at", "type", "summary")
_ROW = ("3", "2026-12-03 20:17:26", "agent.halted", "target=job:42 " + "reason=incident " * 6)


def _table_lines(width: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    @click.command()
    def show() -> None:
        print_table(
            "t",
            _COLUMNS,
            [_ROW],
            widths={"pos": 0, "occurred_at": 1, "type": 1, "summary": 6},
            min_widths={"occurred_at": 11, "type": 12},
        )

    monkeypatch.setenv("COLUMNS", str(width))
    return CliRunner().invoke(show, []).output.splitlines()


def test_a_table_wider_than_the_terminal_gives_its_summary_the_larger_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = _table_lines(80, monkeypatch)
    assert max(map(len, lines)) <= 80
    header = next(line for line in lines if "pos" in line)
    # headers whole, the time broken at its space, the summary the widest cell
    assert "occurred_at" in header and "type" in header
    cells = [cell.strip() for cell in header.split("┃")[1:-1]]
    widths = [len(cell) for cell in header.split("┃")[1:-1]]
    assert cells == list(_COLUMNS)
    assert widths[3] > max(widths[:3])
    assert any("2026-12-03" in line and "20:17" not in line for line in lines)


def test_a_table_that_fits_keeps_its_natural_width(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _table_lines(400, monkeypatch)
    assert max(map(len, lines)) < 400
    assert any("2026-12-03 20:17:26" in line for line in lines)


def test_widths_are_shared_by_water_filling() -> None:
    from claw_ledger.cli.common import share_widths

    natural = {"time": 19, "type": 21, "stream": 17, "summary": 55}
    shares = {"time": 2, "type": 3, "stream": 4, "summary": 6}
    # room for all: each keeps its natural width
    assert share_widths(natural, shares, 200) == natural
    # a column that fits its share keeps its width, and its unused share goes on
    wide = share_widths(natural, shares, 100)
    assert wide["stream"] == 17 and sum(wide.values()) == 100
    assert wide["summary"] > wide["type"] > wide["time"]
    # floors hold where a share is below them, and the rest still fits the room
    floors = {"time": 11, "type": 14}
    narrow = share_widths(natural, shares, 47, floors)
    assert narrow["time"] == 11 and narrow["type"] == 14
    assert sum(narrow.values()) == 47 and narrow["summary"] > narrow["stream"]
