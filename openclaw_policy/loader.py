"""Reading the policy artifact, the OpenClaw config and workspace files.

* JSON5 is parsed with the ``json5`` package. Parse errors are reported in the
  words of the JavaScript ``json5`` library OpenClaw uses
  (``JSON5: invalid character 'x' at 1:4``), because the message ends up in the
  ``policy/policy-jsonc-invalid`` finding and so in ``findingsHash``.
* The OpenClaw config path is resolved like OpenClaw's ``src/config/paths.ts``:
  an explicit path, else ``$OPENCLAW_CONFIG_PATH``, else
  ``$OPENCLAW_STATE_DIR/openclaw.json``, else ``~/.openclaw/openclaw.json``,
  where ``~`` is ``$OPENCLAW_HOME`` when set.
* Files are decoded as UTF-8 with replacement characters, as Node's
  ``readFile(path, "utf-8")`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import json5

from ledger.errors import ConfigError
from openclaw_policy.jsutil import is_record, join_surrogates, js_trim
from openclaw_policy.stable_json import JSON_ESCAPES

__all__ = [
    "ConfigIssue",
    "ConfigSnapshot",
    "Json5Result",
    "load_openclaw_config",
    "parse_json5",
    "read_text_file",
    "resolve_config_path",
    "resolve_home_dir",
    "resolve_workspace_dir",
]

CONFIG_FILENAME: Final = "openclaw.json"
STATE_DIRNAME: Final = ".openclaw"

_EOF_ERROR = re.compile(r"<string>:(\d+) Unexpected end of input at column (\d+)\Z", re.DOTALL)
_CHAR_ERROR = re.compile(r'<string>:(\d+) Unexpected "(.)" at column (\d+)\Z', re.DOTALL)
# the json5 library's formatChar: JSON's escapes and a few more
_FORMAT_CHAR: Final = {
    **JSON_ESCAPES,
    "'": "\\'",
    "\v": "\\v",
    "\0": "\\0",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


@dataclass(frozen=True, slots=True)
class Json5Result:
    ok: bool
    value: Any = None
    message: str = ""


def _format_char(ch: str) -> str:
    if ch in _FORMAT_CHAR:
        return _FORMAT_CHAR[ch]
    if ch < " ":
        return f"\\x{ord(ch):02x}"
    return ch


def _js_message(error: Exception) -> str:
    text = str(error)
    if text.startswith("Empty strings are not legal JSON5"):
        return "JSON5: invalid end of input at 1:1"
    match = _EOF_ERROR.match(text)
    if match:
        return f"JSON5: invalid end of input at {match.group(1)}:{match.group(2)}"
    match = _CHAR_ERROR.match(text)
    if match:
        char = match.group(2)
        line, column = match.group(1), match.group(3)
        if char == "\n":  # the JavaScript lexer has already moved to the next line
            line, column = str(int(line) + 1), "0"
        return f"JSON5: invalid character '{_format_char(char)}' at {line}:{column}"
    return f"JSON5: {text}"


def parse_json5(text: str) -> Json5Result:
    """``JSON5.parse(text)``: comments, trailing commas, unquoted keys, hex, ``Infinity``…"""
    try:
        value = json5.loads(text)
    except (ValueError, RecursionError) as exc:
        return Json5Result(ok=False, message=_js_message(exc))
    return Json5Result(ok=True, value=join_surrogates(value))


def read_text_file(path: Path) -> str | None:
    """The file decoded as UTF-8, or ``None`` when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return data.decode("utf-8", errors="replace")


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    trimmed = value.strip()
    return trimmed or None


def resolve_home_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$OPENCLAW_HOME`` (``~`` expanded) or the user's home directory."""
    env = os.environ if env is None else env
    os_home = Path(_env_value(env, "HOME") or os.path.expanduser("~"))
    explicit = _env_value(env, "OPENCLAW_HOME")
    if explicit is None:
        return os_home
    if explicit == "~" or explicit.startswith(("~/", "~\\")):
        return (os_home / explicit[2:]).resolve() if len(explicit) > 1 else os_home
    return Path(explicit).resolve()


def _resolve_user_path(raw: str, env: Mapping[str, str]) -> Path:
    trimmed = raw.strip()
    if trimmed == "~":
        return resolve_home_dir(env)
    if trimmed.startswith(("~/", "~\\")):
        return (resolve_home_dir(env) / trimmed[2:]).resolve()
    return Path(trimmed).resolve()


def _state_dir(env: Mapping[str, str]) -> Path:
    override = _env_value(env, "OPENCLAW_STATE_DIR")
    if override is not None:
        return _resolve_user_path(override, env)
    return resolve_home_dir(env) / STATE_DIRNAME


def resolve_config_path(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    env = os.environ if env is None else env
    if explicit is not None:
        return _resolve_user_path(os.fspath(explicit), env)
    override = _env_value(env, "OPENCLAW_CONFIG_PATH")
    if override is not None:
        return _resolve_user_path(override, env)
    return _state_dir(env) / CONFIG_FILENAME


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """The OpenClaw config as ``readConfigFileSnapshot`` reports it."""

    path: Path
    exists: bool
    valid: bool
    config: dict[str, Any] = field(default_factory=dict)
    issues: tuple[ConfigIssue, ...] = ()


def load_openclaw_config(path: Path) -> ConfigSnapshot:
    """Parse ``openclaw.json``; a missing file is a valid, empty config."""
    raw = read_text_file(path)
    if raw is None:
        return ConfigSnapshot(path=path, exists=False, valid=True, config={})
    parsed = parse_json5(raw)
    if not parsed.ok:
        issue = ConfigIssue(path="", message=f"JSON5 parse failed: {parsed.message}")
        return ConfigSnapshot(path=path, exists=True, valid=False, issues=(issue,))
    if not is_record(parsed.value):
        issue = ConfigIssue(path="", message="Config must be a JSON5 object.")
        return ConfigSnapshot(path=path, exists=True, valid=False, issues=(issue,))
    return ConfigSnapshot(path=path, exists=True, valid=True, config=parsed.value)


def resolve_workspace_dir(cfg: dict[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """The default agent's workspace: its ``workspace``, ``agents.defaults.workspace``,
    else ``<state dir>/workspace`` (``workspace-<profile>`` with ``$OPENCLAW_PROFILE``)."""
    env = os.environ if env is None else env
    agents = cfg.get("agents") if is_record(cfg.get("agents")) else {}
    assert isinstance(agents, dict)
    agent_list = agents.get("list") if isinstance(agents.get("list"), list) else []
    assert isinstance(agent_list, list)
    records = [agent for agent in agent_list if is_record(agent)]
    default_agent = next((a for a in records if a.get("default") is True), None)
    if default_agent is None and records:
        default_agent = records[0]
    candidates = []
    if default_agent is not None:
        candidates.append(default_agent.get("workspace"))
    defaults = agents.get("defaults")
    if is_record(defaults):
        candidates.append(defaults.get("workspace"))
    for candidate in candidates:
        if isinstance(candidate, str) and js_trim(candidate):
            return _resolve_user_path(candidate, env)
    profile = _env_value(env, "OPENCLAW_PROFILE")
    name = f"workspace-{profile}" if profile and profile.lower() != "default" else "workspace"
    return _state_dir(env) / name
