"""Governed tool declarations of the workspace's ``TOOLS.md``.

Upstream ``policy-state-workspace.ts``: the ``## Tools`` section, one entry per
``### tool`` heading or ``- tool:`` bullet with its risk, sensitivity, owner
and capability tokens.
"""

from __future__ import annotations

import re
from typing import Final

from openclaw_policy.evidence.common import Entry
from openclaw_policy.jsutil import JS_WHITESPACE, js_lower, js_trim

__all__ = ["scan_policy_tools"]

_WS: Final = JS_WHITESPACE
_DOT: Final = "[^\n\r\u2028\u2029]"  # JavaScript "." without the s flag
_HEADING_LINE = re.compile(rf"(#{{1,6}})[{_WS}]+({_DOT}+?)[{_WS}]*#*[{_WS}]*\Z", re.ASCII)
_TOOL_HEADING = re.compile(rf"###[{_WS}]+([^{_WS}#]+)({_DOT}*)\Z", re.ASCII)
_TOOL_BULLET = re.compile(rf"[-*+][{_WS}]+([^:{_WS}][^:]*?)[{_WS}]*:({_DOT}*)\Z", re.ASCII)
_NEXT_HEADING = re.compile(rf"###[{_WS}]+[^{_WS}]", re.ASCII)
_NEXT_BULLET = re.compile(rf"[-*+][{_WS}]+[^:{_WS}][^:]*?[{_WS}]*:", re.ASCII)
_SENSITIVITY = re.compile(
    rf"\bsensitivity[{_WS}]*:[{_WS}]*([a-z0-9_-]+)\b", re.ASCII | re.IGNORECASE
)
_OWNER = re.compile(rf"\bowner[{_WS}]*:[{_WS}]*([^{_WS}#]+)\b", re.ASCII | re.IGNORECASE)
_RISK = re.compile(rf"\brisk[{_WS}]*:[{_WS}]*([a-z0-9_-]+)\b", re.ASCII | re.IGNORECASE)
_RISK_ALIAS = re.compile(r"\bR([0-5])\b", re.ASCII)
_CAPABILITY_TOKEN = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b", re.ASCII)
_CAPABILITIES_LABEL = re.compile(rf"\bcapabilities[{_WS}]*:", re.ASCII | re.IGNORECASE)
_TOKEN_SEPARATORS = re.compile(rf"[{_WS},;:\[\](){{}}#*_-]*\Z", re.ASCII)
_NON_SLUG = re.compile(r"[^a-z0-9-]+")
_LINE_SPLIT = re.compile(r"\r?\n")
_RISK_ALIASES: Final = {
    "0": "low",
    "1": "low",
    "2": "medium",
    "3": "medium",
    "4": "high",
    "5": "critical",
}


def _slugify(text: str) -> str:
    slug = _NON_SLUG.sub("-", js_lower(text).replace("_", "-"))
    return re.sub(r"-+", "-", slug).strip("-")


def _markdown_section_lines(raw: str, section_slug: str) -> list[tuple[int, str]]:
    lines = _LINE_SPLIT.split(raw)
    depth: int | None = None
    section: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        heading = _HEADING_LINE.match(line)
        if heading is not None:
            level = len(heading.group(1))
            if depth is not None and level <= depth:
                break
            if depth is not None:
                section.append((index + 1, line))
                continue
            if _slugify(heading.group(2)) == section_slug:
                depth = level
            continue
        if depth is not None:
            section.append((index + 1, line))
    return section


def _risk_from_meta(meta: str) -> str | None:
    named = _RISK.search(meta)
    if named is not None:
        return js_lower(named.group(1))
    alias = _RISK_ALIAS.search(meta)
    return _RISK_ALIASES[alias.group(1)] if alias is not None else None


def _capability_tokens(lines: list[str]) -> list[str]:
    tokens_out: list[str] = []
    for index, line in enumerate(lines):
        trimmed = js_trim(line)
        if not trimmed:
            continue
        tokens = _CAPABILITY_TOKEN.findall(trimmed)
        if index == 0 or _CAPABILITIES_LABEL.search(trimmed):
            tokens_out.extend(tokens)
            continue
        remaining = trimmed
        for token in tokens:
            remaining = remaining.replace(token, "", 1)
        if _TOKEN_SEPARATORS.match(remaining):
            tokens_out.extend(tokens)
    return tokens_out


def scan_policy_tools(raw: str) -> list[Entry]:
    """Governed tool declarations from the ``## Tools`` section of ``TOOLS.md``."""
    section = _markdown_section_lines(raw, "tools")
    tools: list[Entry] = []
    for index, (line_no, line) in enumerate(section):
        match = _TOOL_HEADING.match(line) or _TOOL_BULLET.match(line)
        if match is None or not _slugify(match.group(1)):
            continue
        tid = _slugify(match.group(1))
        entry: Entry = {"id": tid, "source": f"oc://TOOLS.md/tools/{tid}", "line": line_no}
        meta_lines = [match.group(2) or ""]
        for _, meta_line in section[index + 1 :]:
            if _NEXT_HEADING.match(js_trim(meta_line)) or _NEXT_BULLET.match(meta_line):
                break
            meta_lines.append(meta_line)
        meta = "\n".join(meta_lines)
        risk = _risk_from_meta(meta)
        sensitivity = _SENSITIVITY.search(meta)
        owner = _OWNER.search(meta)
        capabilities = _capability_tokens(meta_lines)
        if risk is not None:
            entry["risk"] = risk
        if sensitivity is not None:
            entry["sensitivity"] = js_lower(sensitivity.group(1))
        if owner is not None:
            entry["owner"] = owner.group(1)
        if capabilities:
            entry["capabilities"] = capabilities
        tools.append(entry)
    return tools
