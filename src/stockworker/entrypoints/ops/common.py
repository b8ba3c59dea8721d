"""What every operator command shares.

- Options: `--json` (one JSON document on stdout, for scripts), and for commands that
  write: `--execute` (without it they print what they would do and change nothing) and
  `--operator NAME` (recorded; default $STOCKWORKER_OPERATOR, else the OS user).
- Exit codes: 0 done (or planned), 1 refused or differences found, 2 bad input or
  configuration (one line on stderr naming what is wrong).
- The audit trail: a command that writes, or would, records one `ops_audit` row when it
  ends (dry runs, refusals and failures too; not when the process is killed) and logs
  one line.
- Progress: a bar on a terminal, a line every few seconds otherwise, both on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

import asyncpg
import orjson
from aiokafka.errors import KafkaConnectionError

from stockworker.adapters.postgres.ops_audit import AuditEntry, OpsAudit
from stockworker.config import Settings

log = logging.getLogger("stockworker.ops")

Handler = Callable[[Settings, argparse.Namespace], int]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2


class OperatorError(Exception):
    """Ends an operator command with one line on stderr and an exit code."""

    exit_code = EXIT_BAD_INPUT


class BadInput(OperatorError):
    """The command names something that is not there (a partition, a dead letter, a time
    range with nothing in it) or cannot be read as given."""


class Refused(OperatorError):
    """The command is understood but not done (already redriven, the group is active,
    commands no longer in the inbox without --allow-reapply)."""

    exit_code = EXIT_REFUSED


def run_operator_command(handler: Handler, settings: Settings, args: argparse.Namespace) -> int:
    """Runs an operator command; what stops it ends as one line on stderr (and, with
    --json, a document on stdout) with its exit code, never a traceback. A failure of
    our own code still raises. ConfigurationError is left to the caller."""
    out = _Watched(sys.stdout)
    try:
        with contextlib.redirect_stdout(out):
            return int(handler(settings, args))
    except OperatorError as exc:
        return _stopped(args, out, str(exc), exc.exit_code)
    except (KafkaConnectionError, OSError) as exc:
        return _stopped(args, out, f"cannot reach a service: {exc}", EXIT_BAD_INPUT)
    except asyncpg.UndefinedTableError as exc:
        return _stopped(
            args,
            out,
            f"the database lacks a table ({exc}): run `stockworker migrate` first",
            EXIT_BAD_INPUT,
        )
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        message = f"the database refused: {type(exc).__name__}: {exc}"
        return _stopped(args, out, message, EXIT_BAD_INPUT)


class _Watched:
    """stdout, noting whether the command wrote anything (its own JSON document)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.written = False

    def write(self, text: str) -> int:
        self.written = self.written or bool(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stopped(args: argparse.Namespace, out: _Watched, message: str, exit_code: int) -> int:
    print(f"stockworker {args.command}: {message}", file=sys.stderr)
    if getattr(args, "json", False) and not out.written:
        # Scripts always get a document: the command's own (with its "refused"), or this.
        print_json({"error": message, "exit_code": exit_code})
    return exit_code


_EXAMPLE_TIME = "2026-11-23T10:00:00+00:00"


def parse_moment(text: str, option: str) -> datetime:
    """An ISO 8601 time with its UTC offset (or Z), given for `option`; BadInput else."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(
            f"{option} {text!r} is not an ISO 8601 time (e.g. {_EXAMPLE_TIME})"
        ) from None
    if moment.tzinfo is None:
        raise BadInput(
            f"{option} {text!r} has no offset: give the time with its offset, e.g. {_EXAMPLE_TIME}"
        )
    return moment


def add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document on stdout (for scripts)"
    )


def add_write_options(parser: argparse.ArgumentParser) -> None:
    """--execute, --operator and --json, for commands that change something."""
    add_output_option(parser)
    parser.add_argument(
        "--execute",
        action="store_true",
        help="do it (without this, print what would be done and change nothing)",
    )
    parser.add_argument(
        "--operator",
        metavar="NAME",
        help="who runs this, for the audit trail (default: $STOCKWORKER_OPERATOR or the OS user)",
    )


def operator_name(args: argparse.Namespace) -> str:
    given = getattr(args, "operator", None) or os.environ.get("STOCKWORKER_OPERATOR")
    if given:
        return str(given)
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return f"uid:{os.getuid()}"


def fingerprint(plan: Any) -> str:
    """A short, stable digest of a plan: the same selection over the same records gives
    the same fingerprint, so an audit row shows whether --execute ran what was planned."""
    data = orjson.dumps(plan, default=str, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:16]


def print_json(document: Any, stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    out.write(orjson.dumps(document, default=str, option=orjson.OPT_INDENT_2).decode() + "\n")


@dataclass
class AuditRun:
    """Filled in by the operation while it runs; written when it ends."""

    operator: str
    operation: str
    arguments: dict[str, Any]
    executed: bool
    started_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    plan_fingerprint: str | None = None
    result: str = "ok"
    audit_id: int | None = None


def arguments_of(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options, as recorded (no handler, no secrets: options carry none)."""
    return {k: v for k, v in vars(args).items() if k not in ("handler", "json") and v is not None}


@asynccontextmanager
async def audited(
    database_url: str, operation: str, args: argparse.Namespace, executed: bool | None = None
) -> AsyncIterator[AuditRun]:
    """Runs an operation and records it in ops_audit when it ends: done, refused or
    failed. The row is written on a connection of its own, after the operation's own
    work, so a process killed mid-run (SIGKILL, power) leaves no row: each operation
    says what a re-run then does. An operation that could not be recorded (no table,
    no privilege) does not start."""
    conn = await asyncpg.connect(database_url)
    try:
        await OpsAudit(conn).check_recordable()
    finally:
        await conn.close()
    run = AuditRun(
        operator=operator_name(args),
        operation=operation,
        arguments=arguments_of(args),
        executed=bool(getattr(args, "execute", False)) if executed is None else executed,
        started_at=datetime.now(UTC),
    )
    try:
        yield run
    except Refused:
        run.result = "refused"
        raise
    except BaseException:
        run.result = "failed"
        raise
    finally:
        conn = await asyncpg.connect(database_url)
        try:
            run.audit_id = await OpsAudit(conn).record(
                AuditEntry(
                    operator=run.operator,
                    operation=run.operation,
                    arguments=run.arguments,
                    executed=run.executed,
                    result=run.result,
                    started_at=run.started_at,
                    counts=run.counts,
                    plan_fingerprint=run.plan_fingerprint,
                )
            )
        finally:
            await conn.close()
        log.info(
            "ops_audit %d: %s by %s, %s, %s, counts %s",
            run.audit_id,
            run.operation,
            run.operator,
            "executed" if run.executed else "dry run",
            run.result,
            run.counts,
        )


class Progress:
    """Progress of a long run on stderr: a bar on a terminal, a line every `interval`
    seconds otherwise (so a log collector is not flooded), and a last line at the end."""

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None = None,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._total = total
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._interval = interval if not self._tty else 0.2
        self._clock = clock
        self._started = self._last = clock()
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._show(final=False)

    def finish(self) -> None:
        self._show(final=True)

    def _show(self, final: bool) -> None:
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = self.done / elapsed
        if self._total:
            share = min(self.done / self._total, 1.0)
            figures = f"{self.done}/{self._total} ({share:.0%}), {rate:.0f}/s"
        else:
            figures = f"{self.done}, {rate:.0f}/s"
        if self._tty:
            width = 30
            filled = int(width * min(self.done / self._total, 1.0)) if self._total else 0
            bar = "#" * filled + "-" * (width - filled) if self._total else ""
            end = "\n" if final else ""
            self._stream.write(f"\r{self._label} [{bar}] {figures}{end}")
        else:
            self._stream.write(f"{self._label}: {figures}{' (done)' if final else ''}\n")
        self._stream.flush()
