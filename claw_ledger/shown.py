"""Untrusted text made safe to show: on a terminal (the CLI) and on a page (the
Trust Pulse viewer). Event bodies, key names, quarantine details and policy
files are written by whoever signs or sends them."""

from __future__ import annotations

__all__ = ["printable"]

#: C0 and C1 controls (ESC starts a terminal's escape sequences) and the
#: bidirectional formatting characters (they reorder what is shown, on a
#: terminal and in a browser), written as JSON writes them (``\\u001b``): JSON
#: text passed through :func:`printable` stays valid and means the same, since
#: those characters can stand only inside its strings
_UNPRINTABLE: dict[int, str] = {
    code: f"\\u{code:04x}"
    for code in (
        *range(0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}
#: the same, keeping line breaks and tabs: the CLI's own lines carry them
_UNPRINTABLE_IN_LINES = {
    code: shown for code, shown in _UNPRINTABLE.items() if chr(code) not in "\n\t"
}


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` safe to show on a terminal or a page: control and bidirectional
    formatting characters written as ``\\u001b`` or ``\\u202e``. Ledger data is
    written by whoever signs or sends it; printed as it is, an escape sequence in
    a halt's reason hid words, rewrote lines or set the window title. ``lines``
    keeps line breaks and tabs (a whole block of output, not a single value)."""
    return text.translate(_UNPRINTABLE_IN_LINES if lines else _UNPRINTABLE)
