"""Settings of claw-ledger and the endpoints of the servers it talks to.

Precedence, highest first: command-line flags > environment > config file >
defaults. The config file is ``$CLAW_LEDGER_CONFIG`` when set (it must then
exist), else ``claw-ledger.toml`` in the current directory when present. Its
keys are the field names of :class:`Settings`, at the top level or under a
``[claw-ledger]`` table; relative paths in it are relative to the file.

When a Kafka bootstrap or a database URL is given (by any of those means)
that server is used as is and nothing is started for it. Otherwise the
endpoints come from ``<state_dir>/services.json``, written by
``claw-ledger services up``.

Database roles (ADR 0013): :func:`effective_database_url` takes the role the
caller needs. ``owner`` (migrations, the default) uses ``database_url``;
``writer`` (the processor, ``init``) uses ``writer_url``
(``$CLAW_LEDGER_WRITER_URL``) and ``reader`` (query commands) ``reader_url``
(``$CLAW_LEDGER_READER_URL``) when given, else ``database_url`` when that is
given (one URL for every role, as before roles existed), else the writer and
reader URLs that ``services up`` recorded.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ledger.errors import ConfigError
from ledger.topics import DEFAULT_TOPIC_PREFIX

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_BROKERS",
    "DEFAULT_KAFKA_VERSION",
    "DEFAULT_PARTITIONS",
    "DEFAULT_TOPIC_PREFIX",
    "ENV_BROKERS",
    "ENV_CACHE_DIR",
    "ENV_CONFIG",
    "ENV_DATABASE_URL",
    "ENV_KAFKA",
    "ENV_KAFKA_VERSION",
    "ENV_PARTITIONS",
    "ENV_READER_URL",
    "ENV_STATE_DIR",
    "ENV_TOPIC_PREFIX",
    "ENV_WRITER_URL",
    "MAX_BROKERS",
    "ROLES",
    "SERVICES_FILE_NAME",
    "DatabaseRole",
    "Endpoints",
    "Settings",
    "effective_database_url",
    "effective_endpoints",
    "effective_kafka_bootstrap",
    "load_settings",
    "read_services_file",
]

#: Kafka broker version started by ``services up``; chosen in docs/adr/0002-kafka-version.md.
DEFAULT_KAFKA_VERSION = "4.4.0"
DEFAULT_PARTITIONS = 4
#: Kafka nodes started by ``services up``: one broker, or a replicated cluster (ADR 0012).
DEFAULT_BROKERS = 1
MAX_BROKERS = 5
CONFIG_FILE_NAME = "claw-ledger.toml"
SERVICES_FILE_NAME = "services.json"

ENV_CONFIG = "CLAW_LEDGER_CONFIG"
ENV_KAFKA = "CLAW_LEDGER_KAFKA"
ENV_DATABASE_URL = "CLAW_LEDGER_DATABASE_URL"
ENV_STATE_DIR = "CLAW_LEDGER_STATE_DIR"
ENV_CACHE_DIR = "CLAW_LEDGER_CACHE_DIR"
ENV_KAFKA_VERSION = "CLAW_LEDGER_KAFKA_VERSION"
ENV_TOPIC_PREFIX = "CLAW_LEDGER_TOPIC_PREFIX"
ENV_PARTITIONS = "CLAW_LEDGER_PARTITIONS"
ENV_WRITER_URL = "CLAW_LEDGER_WRITER_URL"
ENV_READER_URL = "CLAW_LEDGER_READER_URL"
ENV_BROKERS = "CLAW_LEDGER_BROKERS"

#: owner: migrations only; writer: the processor and ``init``; reader: queries
DatabaseRole = Literal["owner", "writer", "reader"]
ROLES: tuple[DatabaseRole, ...] = ("owner", "writer", "reader")

_ENV_BY_FIELD: dict[str, str] = {
    "kafka_bootstrap": ENV_KAFKA,
    "database_url": ENV_DATABASE_URL,
    "writer_url": ENV_WRITER_URL,
    "reader_url": ENV_READER_URL,
    "state_dir": ENV_STATE_DIR,
    "cache_dir": ENV_CACHE_DIR,
    "kafka_version": ENV_KAFKA_VERSION,
    "topic_prefix": ENV_TOPIC_PREFIX,
    "partitions": ENV_PARTITIONS,
    "brokers": ENV_BROKERS,
}
_PATH_FIELDS = frozenset({"state_dir", "cache_dir"})
_UP_HINT = "run `claw-ledger services up`, or pass --kafka / --database-url"
_URL_FIELDS = frozenset({"database_url", "writer_url", "reader_url"})


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; paths are absolute.

    Every field is given by :func:`load_settings`, whose table of defaults is the
    one place they are written.
    """

    state_dir: Path
    cache_dir: Path
    kafka_bootstrap: str | None
    database_url: str | None
    writer_url: str | None
    reader_url: str | None
    kafka_version: str
    topic_prefix: str
    partitions: int
    brokers: int
    #: where each field's value came from: "flag", "env", "file" or "default"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def services_file(self) -> Path:
        return self.state_dir / SERVICES_FILE_NAME

    def with_endpoints(self, endpoints: Endpoints) -> Settings:
        """A copy pointing at ``endpoints`` (so that nothing will be started)."""
        return replace(
            self,
            kafka_bootstrap=endpoints.kafka_bootstrap,
            database_url=endpoints.database_url,
        )


@dataclass(frozen=True)
class Endpoints:
    """Where the ledger's Kafka and Postgres answer."""

    kafka_bootstrap: str
    #: the owner's URL (migrations)
    database_url: str
    #: the writer's and reader's URLs (ADR 0013), when ``services up`` made them
    writer_url: str | None = None
    reader_url: str | None = None

    def env_lines(self) -> list[str]:
        """``NAME=value`` lines for a shell or an ``.env`` file.

        The role URLs come along: with only the owner's URL exported, every
        command would connect as the owner.
        """
        lines = [f"{ENV_KAFKA}={self.kafka_bootstrap}", f"{ENV_DATABASE_URL}={self.database_url}"]
        if self.writer_url:
            lines.append(f"{ENV_WRITER_URL}={self.writer_url}")
        if self.reader_url:
            lines.append(f"{ENV_READER_URL}={self.reader_url}")
        return lines


def _default_cache_dir(env: Mapping[str, str]) -> Path:
    xdg = env.get("XDG_CACHE_HOME")
    home = env.get("HOME")
    base = Path(xdg) if xdg else (Path(home) if home else Path.home()) / ".cache"
    return base / "claw-ledger"


def _find_config_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    explicit = env.get(ENV_CONFIG)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            raise ConfigError(
                f"config file {path} (from ${ENV_CONFIG}) does not exist",
                hint=f"create it, or unset {ENV_CONFIG}",
            )
        return path
    candidate = cwd / CONFIG_FILE_NAME
    return candidate if candidate.is_file() else None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    table = data.get("claw-ledger")
    if isinstance(table, dict):
        data = {k: v for k, v in data.items() if k != "claw-ledger"} | table
    unknown = sorted(set(data) - set(_ENV_BY_FIELD))
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {path}: {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(_ENV_BY_FIELD))}",
        )
    return data


def _coerce(name: str, value: Any, origin: str, base: Path) -> Any:
    """Turn a raw value into the field's type, or raise ConfigError naming its origin."""
    if name in _PATH_FIELDS:
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise ConfigError(f"{name} from {origin} must be a path, got {value!r}")
        path = Path(value).expanduser()
        return path if path.is_absolute() else (base / path)
    if name in ("partitions", "brokers"):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} from {origin} must be an integer, got {value!r}") from None
        if isinstance(value, bool) or number < 1:
            raise ConfigError(f"{name} from {origin} must be >= 1, got {value!r}")
        if name == "brokers" and number > MAX_BROKERS:
            raise ConfigError(f"brokers from {origin} must be <= {MAX_BROKERS}, got {value!r}")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{name} from {origin} must be a string, got {value!r}")
    value = value.strip()
    if not value:
        if name == "kafka_bootstrap" or name in _URL_FIELDS:
            return None
        raise ConfigError(f"{name} from {origin} is empty")
    if name in _URL_FIELDS and not value.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"{name} from {origin} must be a postgresql:// URL, got {value!r}",
            hint="e.g. postgresql://user:password@127.0.0.1:5432/claw_ledger",
        )
    if name == "topic_prefix" and not all(c.isalnum() or c in "._-" for c in value):
        raise ConfigError(
            f"topic_prefix from {origin} may only hold letters, digits, '.', '_', '-'"
        )
    return value


def load_settings(
    *,
    kafka_bootstrap: str | None = None,
    database_url: str | None = None,
    writer_url: str | None = None,
    reader_url: str | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    kafka_version: str | None = None,
    topic_prefix: str | None = None,
    partitions: int | None = None,
    brokers: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings: the keyword arguments are the flags (``None`` = not given).

    ``env`` and ``cwd`` default to the process environment and working directory.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    here = (cwd or Path.cwd()).resolve()
    flags: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": database_url,
        "writer_url": writer_url,
        "reader_url": reader_url,
        "state_dir": state_dir,
        "cache_dir": cache_dir,
        "kafka_version": kafka_version,
        "topic_prefix": topic_prefix,
        "partitions": partitions,
        "brokers": brokers,
    }
    config_path = _find_config_file(environ, here)
    file_values = _read_config_file(config_path) if config_path else {}
    defaults: dict[str, Any] = {
        "kafka_bootstrap": None,
        "database_url": None,
        "writer_url": None,
        "reader_url": None,
        "state_dir": here / ".claw-ledger",
        "cache_dir": _default_cache_dir(environ),
        "kafka_version": DEFAULT_KAFKA_VERSION,
        "topic_prefix": DEFAULT_TOPIC_PREFIX,
        "partitions": DEFAULT_PARTITIONS,
        "brokers": DEFAULT_BROKERS,
    }
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, env_name in _ENV_BY_FIELD.items():
        if flags[name] is not None:
            values[name] = _coerce(name, flags[name], "the command line", here)
            sources[name] = "flag"
        elif environ.get(env_name):
            values[name] = _coerce(name, environ[env_name], f"${env_name}", here)
            sources[name] = "env"
        elif name in file_values and config_path is not None:
            values[name] = _coerce(name, file_values[name], str(config_path), config_path.parent)
            sources[name] = "file"
        else:
            values[name] = defaults[name]
            sources[name] = "default"
    for name in _PATH_FIELDS:
        values[name] = Path(values[name]).absolute()
    return Settings(**values, sources=sources)


def read_services_file(state_dir: Path) -> dict[str, Any] | None:
    """The record written by ``services up``, or ``None`` when there is none."""
    path = state_dir / SERVICES_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}", hint=_UP_HINT) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object", hint=_UP_HINT)
    return data


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_kafka_bootstrap(settings: Settings) -> str:
    """The given Kafka bootstrap, else the one recorded by ``services up`` (broker running).

    Raises :class:`ConfigError` with the hint to run ``claw-ledger services up``.
    """
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    record = read_services_file(settings.state_dir) or {}
    return _running(settings, record, "kafka", "bootstrap", f"Kafka (--kafka / ${ENV_KAFKA})")


def effective_database_url(settings: Settings, role: DatabaseRole = "owner") -> str:
    """The database URL for ``role``: given, else recorded by ``services up`` (server running).

    A given role URL (``writer_url``, ``reader_url``) wins, then a given
    ``database_url`` (for every role), then the record: ``url`` for the owner,
    ``writer_url`` / ``reader_url`` for the others (a record written before
    roles existed has only ``url``, which then serves every role).
    Raises :class:`ConfigError` with the hint to run ``claw-ledger services up``.
    """
    if role not in ROLES:
        raise ValueError(f"unknown database role {role!r}")
    given = {"owner": None, "writer": settings.writer_url, "reader": settings.reader_url}[role]
    if given:
        return given
    if settings.database_url:
        return settings.database_url
    record = read_services_file(settings.state_dir) or {}
    what = f"PostgreSQL (--database-url / ${ENV_DATABASE_URL})"
    value = _running(settings, record, "postgres", "url", what)
    if role != "owner":
        return _recorded(record, "postgres", f"{role}_url") or value
    return value


def effective_endpoints(settings: Settings) -> Endpoints:
    """Endpoints to use: the given ones, else those recorded by ``services up``.

    Raises :class:`ConfigError` (hint: run ``claw-ledger services up``) when an
    endpoint is neither given nor recorded for a running server.
    """
    return Endpoints(effective_kafka_bootstrap(settings), effective_database_url(settings))


def _running(
    settings: Settings, record: Mapping[str, Any], service: str, key: str, what: str
) -> str:
    """The address of ``service``'s local server while it runs; else a
    :class:`ConfigError` saying that none is recorded, or that the one recorded
    (at the address it had) is not running."""
    value = _recorded(record, service, key)
    if value is not None:
        return value
    entry = record.get(service)
    stale = entry.get(key) if isinstance(entry, dict) else None
    where = f"the local server recorded in {settings.services_file}"
    if isinstance(stale, str) and stale:
        raise ConfigError(
            f"no {what} endpoint given, and {where} ({stale}) is not running", hint=_UP_HINT
        )
    raise ConfigError(
        f"no {what} endpoint given, and no running local server recorded in"
        f" {settings.services_file}",
        hint=_UP_HINT,
    )


def _recorded(record: Mapping[str, Any], service: str, key: str) -> str | None:
    entry = record.get(service)
    if not isinstance(entry, dict):
        return None
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        return None
    if not entry.get("managed", True):
        return value
    # a cluster answers while any of its nodes runs
    nodes = entry.get("nodes")
    pids = [n.get("pid") for n in nodes if isinstance(n, dict)] if isinstance(nodes, list) else []
    if not any(_pid_alive(pid) for pid in [entry.get("pid"), *pids]):
        return None
    return value
