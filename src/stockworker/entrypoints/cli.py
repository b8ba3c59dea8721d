"""`stockworker` command line. Defaults come from the environment (see README)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime

from stockworker.config import ConfigurationError, Settings


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from stockworker.adapters.postgres.migrations import migrate

    applied = asyncio.run(migrate(settings.database_url, grant_to=args.grant_to))
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    if args.grant_to:
        print(
            f"role {args.grant_to} may read and write the tables, only append to the ledger, "
            "and change no schema"
        )
    return 0


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from stockworker.adapters.kafka.admin import ensure_topics
    from stockworker.service.limits import record_limit
    from stockworker.service.topics import Topics

    topics = Topics(settings.topic_prefix)
    dead_letters_limit = record_limit(settings.max_message_bytes)
    asyncio.run(
        ensure_topics(
            settings.kafka(),
            topics,
            args.partitions,
            dead_letters_max_message_bytes=dead_letters_limit,
        )
    )
    print("topics ready: " + ", ".join(topics.all()))
    return 0


def _worker(settings: Settings, _args: argparse.Namespace) -> int:
    from stockworker.adapters.metrics import multiprocess

    # Before prometheus_client is imported: the relay's child process reports its metrics
    # through this directory (PROMETHEUS_MULTIPROC_DIR, a fresh private one unless set).
    metrics_directory = multiprocess.prepare()
    try:
        from stockworker.entrypoints.runner import run_service
        from stockworker.entrypoints.worker import WorkerExit, create_app

        ending = WorkerExit()
        run_service(create_app(settings, ending).run())
        return ending.code
    finally:
        metrics_directory.close()


def _relay(settings: Settings, _args: argparse.Namespace) -> int:
    from stockworker.bootstrap import build_relay
    from stockworker.entrypoints.runner import run_service, settle_heap
    from stockworker.entrypoints.signals import run_until_signal

    relay = build_relay(settings)
    settle_heap()
    run_service(run_until_signal(relay.run(), relay.stop))
    return 0


def _schemas(_settings: Settings, args: argparse.Namespace) -> int:
    from stockworker.entrypoints.schemas import write_schemas

    changed = write_schemas(args.out, check=args.check)
    if args.check and changed:
        print("schemas out of date: " + ", ".join(changed), file=sys.stderr)
        return 1
    print("schemas up to date" if not changed else "wrote: " + ", ".join(changed))
    return 0


def _positions(settings: Settings, args: argparse.Namespace) -> int:
    from stockworker.entrypoints.audit import print_positions

    asyncio.run(print_positions(settings.database_url, detail=args.detail))
    return 0


def _project(settings: Settings, _args: argparse.Namespace) -> int:
    from stockworker.entrypoints.audit import project_ledger

    return asyncio.run(project_ledger(settings.database_url))


def _as_of(settings: Settings, args: argparse.Namespace) -> int:
    from stockworker.entrypoints.audit import print_as_of

    moment = datetime.fromisoformat(args.time)
    if moment.tzinfo is None:
        print("give the time with its offset, e.g. 2026-11-23T10:00:00+00:00", file=sys.stderr)
        return 2
    asyncio.run(print_as_of(settings.database_url, args.sku, args.location, moment))
    return 0


def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    from stockworker.entrypoints.outbox_admin import print_parked, retry_parked

    if args.outbox_command == "parked":
        return asyncio.run(print_parked(settings.database_url))
    return asyncio.run(retry_parked(settings.database_url, args.ids))


def _demo(settings: Settings, _args: argparse.Namespace) -> int:
    from stockworker.entrypoints.demo import run_demo

    return asyncio.run(run_demo(settings))


def _top(settings: Settings, args: argparse.Namespace) -> int:
    from stockworker.entrypoints.top import run_top

    url = args.url or f"http://127.0.0.1:{settings.http_port or 8080}/metrics"
    return run_top(url, args.interval, args.once)


COMMANDS = {
    "migrate": (_migrate, "apply database migrations (run as the schema owner)"),
    "topics": (_topics, "create the Kafka topics of the contract"),
    "worker": (_worker, "consume commands, apply them, publish events (runs the relay too)"),
    "relay": (_relay, "run only the outbox relay"),
    "schemas": (_schemas, "write JSON Schemas of every command and event"),
    "positions": (_positions, "print every stock position"),
    "project": (_project, "recompute every position from the ledger and report differences"),
    "as-of": (_as_of, "print a position's quantities at a moment (from the ledger)"),
    "outbox": (_outbox, "outbox rows the relay parked: `parked` lists them, `retry ID` re-queues"),
    "demo": (_demo, "feed a short demo stream to a running worker and print its events"),
    "top": (_top, "live terminal view of a worker's /metrics: throughput, lag, backlog"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stockworker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == "topics":
            p.add_argument("--partitions", type=int, default=6)
        if name == "migrate":
            p.add_argument(
                "--grant-to",
                metavar="ROLE",
                help="the worker's database role: give it data privileges only",
            )
        if name == "positions":
            p.add_argument(
                "--detail", action="store_true", help="list each position's serials or lots too"
            )
        if name == "as-of":
            p.add_argument("sku")
            p.add_argument("location")
            p.add_argument("time", help="ISO 8601 with offset, compared with occurred_at")
        if name == "outbox":
            actions = p.add_subparsers(dest="outbox_command", required=True)
            actions.add_parser("parked", help="list parked rows (exit 1 when there is any)")
            retry = actions.add_parser(
                "retry", help="re-queue parked rows once their cause is fixed"
            )
            retry.add_argument("ids", metavar="ID", type=int, nargs="+")
        if name == "top":
            from stockworker.entrypoints.top import add_arguments

            add_arguments(p)
        if name == "schemas":
            p.add_argument("--out", default="schemas")
            p.add_argument("--check", action="store_true", help="fail if files differ")
    from stockworker.entrypoints.ops import REGISTRARS

    for register in REGISTRARS:
        register(sub)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        return _misconfigured(exc)
    from stockworker.entrypoints.logs import configure_logging

    configure_logging(settings)
    operator_command = getattr(args, "handler", None)
    try:
        if operator_command is not None:
            from stockworker.entrypoints.ops.common import run_operator_command

            return run_operator_command(operator_command, settings, args)
        handler, _ = COMMANDS[args.command]
        return handler(settings, args)
    except ConfigurationError as exc:
        return _misconfigured(exc)


def _misconfigured(exc: ConfigurationError) -> int:
    """One line naming the setting: retrying would not help, so nothing is retried."""
    print(f"stockworker: configuration error: {exc}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
