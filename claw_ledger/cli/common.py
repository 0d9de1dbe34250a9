"""Helpers shared by the CLI command modules.

Command modules import each other never, only this module: what two commands
share lives here. Nothing heavy (Kafka, Postgres, faust) is imported at module
level; each helper imports what it needs when called, so that listing the
commands (``--help``) stays fast.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, TypeVar, cast

import click

from claw_ledger.config import Settings, load_settings
from claw_ledger.names import EVENT_TYPES, REASON_CODES, KnownNames, UnknownNameError
from claw_ledger.shown import printable
from ledger.crypto import KeyPair, load_key
from ledger.encoding import MAX_POSITION
from ledger.errors import ConfigError, PolicyError, ReasonCode
from ledger.instants import format_instant

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from claw_ledger.replaying import ReplayRequest, ReplayResult
    from consumers.config import ProcessorConfig
    from producers.outcome import PublishOutcome
    from producers.publish import PublishTarget

F = TypeVar("F", bound=Callable[..., Any])

#: a keyset cursor (a ledger position, a quarantine id, a tree size): a Postgres
#: bigint, refused as a usage error beyond it rather than by the database
CURSOR = click.IntRange(0, MAX_POSITION)

__all__ = [
    "CURSOR",
    "EVENT_TYPE",
    "REASON_CODE",
    "Advance",
    "IdentifierArgsCommand",
    "KnownName",
    "Stage",
    "choice_option",
    "echo",
    "emit_json",
    "fetch_job",
    "file_argument",
    "group_option",
    "key_option",
    "keys_dir",
    "limit_option",
    "load_wpc_reference",
    "plain",
    "precheck_policy",
    "print_table",
    "printable",
    "processor_config",
    "progress_bar",
    "progress_stages",
    "publish_and_report",
    "publish_target",
    "read_input",
    "read_token",
    "read_wpc",
    "readiness_options",
    "replay_shown",
    "report_publish",
    "resolve_key",
    "run_async",
    "settings",
    "share_widths",
    "shows_progress",
    "sign_and_publish",
    "signing_options",
    "stack_options",
    "terminal",
    "zoned_time_option",
]


#: a base64url identifier (a policy hash, a pulse id) that begins with "-"
_DASH_IDENTIFIER = re.compile(r"-[A-Za-z0-9_-]{15,}")


class IdentifierArgsCommand(click.Command):
    """A command whose arguments are base64url identifiers, which may begin with "-".

    One hash in 64 does. Click would read such a word as a cluster of short
    options: an unknown letter is a usage error, and an ``h`` in it prints the
    help and exits 0, so ``wpc revoke -…h…`` revoked nothing and succeeded.
    Before parsing, a word that is not one of the command's options and has an
    identifier's shape is moved behind ``--`` with the other arguments, in their
    order; the options stay in front. Without such a word nothing changes.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(_DASH_IDENTIFIER.fullmatch(word) for word in args):
            args = self._identifiers_last(ctx, args)
        return super().parse_args(ctx, args)

    def _identifiers_last(self, ctx: click.Context, args: list[str]) -> list[str]:
        takes_values: dict[str, int] = {}
        for param in self.get_params(ctx):
            if isinstance(param, click.Option):
                arity = 0 if param.is_flag or param.count else param.nargs
                for name in (*param.opts, *param.secondary_opts):
                    takes_values[name] = arity
        options: list[str] = []
        arguments: list[str] = []
        words = iter(args)
        for word in words:
            if word == "--":
                arguments.extend(words)
                break
            name = word.split("=", 1)[0]
            if name in takes_values:
                options.append(word)
                if "=" not in word:
                    options.extend(next(words, "") for _ in range(takes_values[name]))
            elif word.startswith("-") and not _DASH_IDENTIFIER.fullmatch(word):
                options.append(word)  # not an option of ours: click names it
            else:
                arguments.append(word)
        return [*options, "--", *arguments]


def settings() -> Settings:
    """Settings from flags (set by the root group as env), env, config file, defaults."""
    return load_settings()


def keys_dir(resolved: Settings | None = None) -> Path:
    return (resolved or settings()).state_dir / "keys"


def resolve_key(value: str) -> KeyPair:
    """``--key`` accepts a key file path or the NAME given to ``claw-ledger keys new``."""
    path = Path(value).expanduser()
    if path.is_file():
        return load_key(path)
    if "/" not in value:
        candidate = keys_dir() / f"{value}.key"
        if candidate.is_file():
            return load_key(candidate)
    raise ConfigError(
        f"no key file {value!r} (looked for the path and for {keys_dir() / (value + '.key')})",
        hint="create one with `claw-ledger keys new NAME`",
    )


def key_option(
    help_text: str = "Signing key: a key file path or a key NAME.",
) -> Callable[[F], F]:
    return click.option("--key", "key_ref", required=True, metavar="KEY", help=help_text)


def json_option(help_text: str = "Print JSON.") -> Callable[[F], F]:
    """``--json``, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


#: consumers.config.ProcessorConfig.group (not imported: --help loads no consumer)
DEFAULT_GROUP = "claw-ledger-verifier"
_GROUP_HELP = "Kafka consumer group; start more processes with the same group to scale."
_PAGE = click.IntRange(1, 10_000)
_LIMIT_HELP = "Rows on this page; the next page starts after its last row (--after)."


def group_option() -> Callable[[F], F]:
    """``--group``: the processors' Kafka consumer group."""
    return click.option("--group", default=DEFAULT_GROUP, show_default=True, help=_GROUP_HELP)


def limit_option(default: int) -> Callable[[F], F]:
    """``--limit``: rows on one page."""
    return click.option("--limit", type=_PAGE, default=default, show_default=True, help=_LIMIT_HELP)


def signing_options(key_help: str, json_help: str = "Print JSON.") -> Callable[[F], F]:
    """``--key`` and ``--json``, the options of a command that signs and records an event."""
    return stack_options(key_option(key_help), json_option(json_help))


def stack_options(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``options`` as if stacked in this order, top to bottom."""

    def apply(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return apply


#: as ``claw_ledger.ledger_health.DEFAULT_MAX_BEAT_AGE`` (a test holds them equal):
#: not imported, so that ``--help`` stays light
MAX_BEAT_AGE_SECONDS = 30.0


def readiness_options(lag_help: str, beat_help: str) -> Callable[[F], F]:
    """``--max-lag RECORDS`` and ``--max-beat-age SECONDS``: when the ledger counts as
    ready (`status`, `serve`'s /readyz)."""
    max_lag = click.option(
        "--max-lag",
        type=click.IntRange(0),
        default=10_000,
        show_default=True,
        metavar="RECORDS",
        help=lag_help,
    )
    max_beat_age = click.option(
        "--max-beat-age",
        type=click.FloatRange(1, 300),
        default=MAX_BEAT_AGE_SECONDS,
        show_default=True,
        metavar="SECONDS",
        help=beat_help,
    )
    return stack_options(max_lag, max_beat_age)


class KnownName(click.ParamType):
    """One of a fixed set of names (an event type, a reason code): a name the
    ledger cannot hold is a usage error naming the closest ones."""

    def __init__(self, names: KnownNames) -> None:
        self.name = names.what
        self._names = names

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return self._names.resolve(str(value))
        except UnknownNameError as exc:
            self.fail(str(exc), param, ctx)


#: ``--type``: an event type the registry knows
EVENT_TYPE = KnownName(EVENT_TYPES)
#: ``--reason``: a stable reason code
REASON_CODE = KnownName(REASON_CODES)


def choice_option(
    flag: str, choices: Sequence[str], default: str | None = None, **kwargs: Any
) -> Callable[[F], F]:
    """``flag`` taking one of ``choices``; the default (shown) is the first one unless given."""
    return click.option(
        flag,
        type=click.Choice(list(choices)),
        default=choices[0] if default is None else default,
        show_default=True,
        **kwargs,
    )


def log_options() -> Callable[[F], F]:
    """``--log-level`` and ``--log-format`` of a long-running command: the command
    runs with logging set up (:mod:`claw_ledger.logs`), and both settings exported
    for the processes it starts."""
    import functools
    import os

    from claw_ledger.logs import FORMAT_ENV, FORMATS, LEVEL_ENV, LEVELS, configure_logging

    def apply(function: F) -> F:
        @functools.wraps(function)
        def configured(*args: Any, log_level: str, log_format: str, **kwargs: Any) -> Any:
            configure_logging(log_level, "json" if log_format == "json" else "text")
            os.environ[LEVEL_ENV], os.environ[FORMAT_ENV] = log_level, log_format
            return function(*args, **kwargs)

        level = choice_option(
            "--log-level",
            LEVELS,
            default="info",
            envvar=LEVEL_ENV,
            help=f"Records at this level and above go to stderr. Env: {LEVEL_ENV}.",
        )
        shape = choice_option(
            "--log-format",
            FORMATS,
            envvar=FORMAT_ENV,
            help="text: one line per record, '<UTC time> <LEVEL> <logger>: <message>';"
            f" json: one object per line, for log shippers. Env: {FORMAT_ENV}.",
        )
        return stack_options(level, shape)(cast(F, configured))

    return apply


def file_argument() -> Callable[[F], F]:
    """``FILE``, a file to read (``-``: stdin); read it with :func:`read_input`."""
    return click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))


def jobs_option() -> Callable[[F], F]:
    """``--jobs N``: processes checking signatures beside this one (``None``: one per CPU)."""
    return click.option(
        "--jobs",
        type=click.IntRange(1, 256),
        metavar="N",
        help="Processes checking signatures, beside this one (default: one per CPU;"
        " 1: all in this process).",
    )


def echo(message: str | bytes | None = None, *, err: bool = False, nl: bool = True) -> None:
    """:func:`click.echo` of text made :func:`printable` (line breaks kept); the
    CLI's commands write their human output through this."""
    if isinstance(message, str):
        message = printable(message, lines=True)
    click.echo(message, err=err, nl=nl)


def shows_progress(quiet: bool) -> bool:
    """Whether a long command draws a progress bar: on a terminal's stderr, and
    not when its output is JSON."""
    return not quiet and sys.stderr.isatty()


class Advance(Protocol):
    """Moves a :func:`progress_bar` to ``done``; ``total`` once it is known."""

    def __call__(self, done: int, total: int | None = None) -> None: ...


class Stage(Protocol):
    """Adds a bar to a :func:`progress_stages` display and gives its :class:`Advance`."""

    def __call__(self, label: str, total: int | None) -> Advance: ...


@contextmanager
def progress_stages(*, quiet: bool) -> Iterator[Stage]:
    """Bars on stderr while the block runs, one per stage of a long command (its
    label, done of ``total``, the rate, the time left); yields ``stage(label,
    total)``, which adds the next bar below the finished ones. Drawn only where
    :func:`shows_progress` says so."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f} ev/s")

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeRemainingColumn(),
        console=terminal(stderr=True),
        disable=not shows_progress(quiet),
    )
    with progress:

        def stage(label: str, total: int | None) -> Advance:
            task = progress.add_task(label, total=total)

            def advance(done: int, total: int | None = None) -> None:
                progress.update(task, completed=done, total=total)

            return advance

        yield stage


@contextmanager
def progress_bar(label: str, total: int | None, *, quiet: bool) -> Iterator[Advance]:
    """One :func:`progress_stages` bar for the block; yields ``advance(done)``."""
    with progress_stages(quiet=quiet) as stage:
        yield stage(label, total)


def replay_shown(resolved: Settings, request: ReplayRequest, *, quiet: bool) -> ReplayResult:
    """:func:`~claw_ledger.replaying.run_replay` under a :func:`progress_bar` of
    the source's events: a replay of a large ledger takes minutes."""
    from claw_ledger.replaying import run_replay, source_size

    total = run_async(source_size(resolved, request.source)) if shows_progress(quiet) else None
    with progress_bar("replay", total, quiet=quiet) as advance:
        result: ReplayResult = run_async(run_replay(resolved, request, progress=advance))
        advance(result.events)
    return result


def terminal(*, stderr: bool = False) -> Console:
    """A rich console for the CLI's own lines. Emoji codes are off: ``did:key:z6Mk…``
    would otherwise print as ``did🔑z6Mk…``. Markup stays on for the CLI's own
    styling; a value read from the ledger goes in through :func:`plain` or
    ``rich.markup.escape``, never as markup."""
    from rich.console import Console

    return Console(stderr=stderr, emoji=False, highlight=False)


def plain(text: str, style: str = "") -> Text:
    """``text`` exactly as it is, but :func:`printable`: no markup, no emoji codes.
    Ledger data (event bodies, quarantine details, key names) is written by
    whoever signs or sends it; read as markup, ``[/x]`` raised and stopped the
    command, and ``[black]`` hid the words after it."""
    from rich.text import Text

    return Text(printable(text), style=style)


def share_widths(
    natural: Mapping[str, int],
    shares: Mapping[str, int],
    room: int,
    floors: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Widths for the columns of ``shares`` within ``room`` characters: a column
    whose content fits in its share keeps its natural width, one whose share is
    below its floor gets the floor, and what either leaves goes to the others,
    again by share (water-filling)."""
    floors = floors or {}
    widths: dict[str, int] = {}
    waiting = {column: share for column, share in shares.items() if share > 0}
    settled = True
    while waiting and settled:
        settled = False
        total = sum(waiting.values())
        for column, share in waiting.items():
            fair = room * share / total
            least = min(floors.get(column, 1), natural[column])
            if natural[column] <= fair or least >= fair:
                widths[column] = natural[column] if natural[column] <= fair else least
                room -= widths[column]
                del waiting[column]  # the loop ends here: the shares change
                settled = True
                break
    if waiting:
        total = sum(waiting.values())
        for column, share in waiting.items():
            widths[column] = max(1, room * share // total)
        # what rounding left over goes to the column with the largest share
        widest = max(waiting, key=lambda column: waiting[column])
        widths[widest] += max(0, room - sum(widths[column] for column in waiting))
    return widths


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    fold: bool = True,
    widths: Mapping[str, int] | None = None,
    min_widths: Mapping[str, int] | None = None,
) -> None:
    """A table on stdout, every cell shown as :func:`plain` text; with ``fold``,
    long cells wrap instead of being cut short. ``widths``: when the table is
    wider than the terminal, the share of the width each column may take
    (:func:`share_widths`); a column given 0 keeps its values whole (short ones
    read as a whole: positions, ids). ``min_widths``: the narrowest a shared
    column gets then (a time wraps at its space, not inside a number)."""
    from rich.cells import cell_len
    from rich.table import Table

    console = terminal()
    cells = [tuple(map(plain, row)) for row in rows]
    natural = {
        column: max([cell_len(column), *(cell_len(row[i].plain) for row in cells)])
        for i, column in enumerate(columns)
    }
    fixed: dict[str, int] = {}
    if widths is not None:
        # each column has a space either side and a border after it, plus the first border
        room = console.width - (3 * len(columns) + 1)
        whole = sum(natural[c] for c in columns if widths.get(c) == 0)
        if sum(natural.values()) > room:
            shares = {c: widths.get(c, 1) for c in columns if widths.get(c) != 0}
            fixed = share_widths(natural, shares, room - whole, min_widths)
    table = Table(title=plain(title))
    for column in columns:
        if widths is not None and widths.get(column) == 0:
            table.add_column(column, no_wrap=True)
        else:
            width = fixed.get(column)
            table.add_column(column, overflow="fold" if fold else "ellipsis", width=width)
    for row in cells:
        table.add_row(*row)
    console.print(table)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_instant(value)
    return str(value)


def emit_json(document: Any) -> None:
    """``document`` as indented JSON on stdout; times spelled as the API spells
    them (``ledger.instants``), anything else JSON has no type for as its text."""
    # json.dumps escapes every control and non-ASCII character itself (ensure_ascii):
    # nothing for printable to do on what may be a large document
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=_json_value))


def exit_with_running_status(name: str, pid: int | None, as_json: bool) -> NoReturn:
    """Report whether the detached ``name`` runs; exit 0 when it does, 1 when not."""
    if as_json:
        emit_json({"running": pid is not None, "pid": pid})
    else:
        echo(f"{name} running (pid {pid})" if pid else f"{name} not running")
    sys.exit(0 if pid else 1)


def run_async(coro: Any) -> Any:
    import asyncio

    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)


def read_input(path: str) -> bytes:
    """The bytes of file ``path``, or of stdin for ``-``. A file that cannot be
    read (missing, a directory, no permission) is a ConfigError (exit 2)."""
    try:
        with click.open_file(path, "rb") as handle:
            data: bytes = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return data


def read_wpc(path: str) -> dict[str, Any]:
    """The WPC document in file ``path`` (JSON or JSON5, ``-`` for stdin), validated."""
    from ledger.wpc import parse_wpc_bytes

    return parse_wpc_bytes(read_input(path))


def load_wpc_reference(reference: str) -> dict[str, Any]:
    """A WPC document from a file (JSON or JSON5, ``-`` for stdin) or, for a
    policy hash that names no file, from the registry (its hash checked)."""
    import os

    from ledger.canonical import parse_json_strict
    from ledger.encoding import B64U_SHA256_RE
    from ledger.wpc import policy_hash_b64u

    if reference == "-" or os.path.exists(reference) or not B64U_SHA256_RE.fullmatch(reference):
        return read_wpc(reference)
    from claw_ledger.reads import query_sync
    from storage.projection_queries import get_policy

    row = query_sync(settings(), get_policy, reference)
    if row is None:
        raise PolicyError(ReasonCode.WPC_UNKNOWN, f"no WPC {reference} in the registry")
    envelope = parse_json_strict(str(row["wpc_envelope_raw"]).encode("utf-8"))
    document = dict(envelope["payload"])
    if policy_hash_b64u(document) != reference:
        raise PolicyError(
            ReasonCode.WPC_HASH_MISMATCH, f"the registry's WPC {reference} does not hash to it"
        )
    return document


def zoned_time_option(value: str | None, option: str) -> datetime | None:
    """The ISO 8601 time with its zone of ``option`` (``None`` when not given); a
    time that is not one is a usage error naming the option and what is wrong."""
    from claw_ledger.replaying import zoned_time

    try:
        return None if value is None else zoned_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{option}'") from exc


def read_token(value: str) -> str:
    """A token read from stdin for ``-``, from the file ``value`` names when there
    is one (a token file keeps the token off the command line, which other users
    can see), else ``value`` itself."""
    if value == "-":
        return read_input("-").decode("utf-8", "replace").strip()
    try:
        path = Path(value).expanduser()
        named_file = path.is_file()
    except (OSError, ValueError):  # a token is no file name: too long, a NUL
        named_file = False
    if named_file:
        return read_input(str(path)).decode("utf-8", "replace").strip()
    return value.strip()


# ---------------------------------------------------------------- publishing


def publish_target(resolved: Settings | None = None) -> PublishTarget:
    """Kafka, the ingress and control topics (each event goes to its type's lane) and
    the database (as the reader: the verdict is a read) of the configured ledger."""
    from claw_ledger.config import effective_database_url, effective_kafka_bootstrap
    from claw_ledger.topics import topics_for
    from producers.publish import PublishTarget

    resolved = resolved or settings()
    topics = topics_for(resolved)
    return PublishTarget(
        effective_kafka_bootstrap(resolved),
        topics.ingress,
        effective_database_url(resolved, role="reader"),
        control_topic=topics.control,
    )


def sign_and_publish(
    key: KeyPair,
    event_type: str,
    stream: str,
    body: Mapping[str, Any],
    *,
    target: PublishTarget | None = None,
    wait: bool = True,
    timeout: float = 30.0,
) -> PublishOutcome:
    """Sign and publish one event to the configured ledger; the outcome, unchecked."""
    from producers.publish import publish_event_sync

    return publish_event_sync(
        target or publish_target(), key, event_type, stream, body, wait=wait, timeout=timeout
    )


def publish_and_report(
    key_ref: str,
    event_type: str,
    stream: str,
    body: Mapping[str, Any],
    as_json: bool,
    ok_message: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Sign ``body`` with the key ``key_ref`` names, publish it and report the outcome
    as :func:`report_publish` does."""
    outcome = sign_and_publish(resolve_key(key_ref), event_type, stream, body)
    report_publish(outcome, as_json, ok_message, extra)


def report_publish(
    outcome: PublishOutcome,
    as_json: bool,
    ok_message: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Print the outcome (its JSON document with ``extra`` added, or ``ok_message``).

    Exit 1 (RejectedError) when quarantined, after printing the JSON; exit 2
    (ServiceError) when no verdict arrived in time, after printing the JSON
    (``status: timed_out``: the event is on Kafka, and a script needs its id and
    coordinates to ask for the verdict later).
    """
    from producers.outcome import TimedOut

    if as_json:
        emit_json(outcome.to_dict() | dict(extra or {}))
    if isinstance(outcome.verdict, TimedOut):
        raise outcome.verdict.error(outcome.event_id)
    outcome.check()
    if not as_json:
        position = outcome.position
        echo(f"{ok_message} (ledger position {'?' if position is None else position})")


# ---------------------------------------------------------------- ledger reads


def precheck_policy(policy_hash: str) -> dict[str, Any]:
    """Fail early (before publishing) when a WPC may not be used: malformed hash,
    unknown, revoked or superseded. The ledger checks again."""
    from claw_ledger.reads import query_sync
    from ledger.state import LedgerState
    from ledger.types.policies import usable_policy
    from ledger.wpc import check_policy_hash
    from storage.projection_queries import get_policy

    check_policy_hash(policy_hash)
    row = query_sync(settings(), get_policy, policy_hash)
    state = LedgerState(policies={policy_hash: row} if row else {})
    return usable_policy(state, policy_hash)


def fetch_job(job_id: str) -> dict[str, Any]:
    """The ledger's row for ``job_id``; ``JOB_UNKNOWN`` when there is none."""
    from claw_ledger.reads import query_sync
    from ledger.state import LedgerState
    from ledger.types.runs import require_job
    from storage.projection_queries import get_job

    job = query_sync(settings(), get_job, job_id)
    return require_job(LedgerState(jobs={job_id: job} if job else {}), job_id)


# ---------------------------------------------------------------- the processor


def processor_config(
    group: str,
    batch_size: int,
    *,
    control_cache_size: int | Literal["default"] | None = "default",
    control_check: Literal["start", "background"] = "background",
    lanes: str = "control,ingress",
) -> ProcessorConfig:
    """The processor's configuration from the settings (imports the consumers: call it
    only from the commands that run a processor). The processor connects as the writer.
    ``control_cache_size`` ``None`` holds the control tables whole (ADR 0020)."""
    from claw_ledger.config import effective_database_url, effective_kafka_bootstrap
    from claw_ledger.topics import topics_for
    from consumers.config import DEFAULT_CONTROL_CACHE_SIZE, ProcessorConfig, parse_lanes

    resolved = settings()
    topics = topics_for(resolved)
    return ProcessorConfig(
        kafka_bootstrap=effective_kafka_bootstrap(resolved),
        database_url=effective_database_url(resolved, role="writer"),
        ingress_topic=topics.ingress,
        verified_topic=topics.verified,
        quarantine_topic=topics.quarantine,
        control_topic=topics.control,
        lanes=parse_lanes(lanes),
        group=group,
        batch_size=batch_size,
        datadir=str(resolved.state_dir / "processor"),
        control_cache_size=(
            DEFAULT_CONTROL_CACHE_SIZE if control_cache_size == "default" else control_cache_size
        ),
        control_check=control_check,
    )
