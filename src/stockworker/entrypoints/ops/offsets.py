"""`stockworker offsets show|reset`: the worker's consumer group on the commands topic.

`show` prints, per partition, the committed offset, the bounds, the lag and the member
that owns it. `reset` moves the committed offsets like `kafka-consumer-groups
--reset-offsets`: it always prints the plan, changes nothing without --execute, and
refuses to execute while the group has members (stop the workers first).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from stockworker.adapters.kafka.consumer_groups import (
    CommitTimedOut,
    ConsumerGroups,
    GroupActive,
    GroupDescription,
    UnknownTopicOrPartition,
)
from stockworker.config import Settings
from stockworker.entrypoints.ops.common import (
    EXIT_OK,
    BadInput,
    OperatorError,
    Refused,
    add_output_option,
    add_write_options,
    audited,
    fingerprint,
    parse_moment,
    print_json,
)
from stockworker.service.offset_plan import (
    PartitionOffsets,
    PlanError,
    ResetKind,
    ResetPlan,
    ResetRequest,
    plan_reset,
)
from stockworker.service.topics import Topics

DUPLICATES_NOTE = (
    "Records read again are duplicates to the worker: its inbox returns their stored "
    "results and changes no stock (unless their inbox rows passed "
    "STOCKWORKER_INBOX_RETENTION_HOURS; then they are applied again)."
)


def register(sub: Any) -> None:
    offsets = sub.add_parser(
        "offsets", help="the worker's consumer group on the commands topic: show, reset"
    )
    actions = offsets.add_subparsers(dest="offsets_command", required=True)

    show = actions.add_parser(
        "show", help="per partition: committed, beginning, end, lag, owner; the group's state"
    )
    _add_group_option(show)
    add_output_option(show)
    show.set_defaults(handler=_show)

    reset = actions.add_parser(
        "reset",
        help="move the group's committed offsets (prints the plan; --execute to commit it)",
    )
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--to-datetime",
        metavar="TIME",
        help="the first record at or after TIME (ISO 8601 with offset)",
    )
    target.add_argument(
        "--to-offset",
        metavar="N|P=N",
        action="append",
        help="offset N in every selected partition, or N in partition P (repeatable)",
    )
    target.add_argument(
        "--shift-by", metavar="N", type=int, help="move by N records (negative: back)"
    )
    target.add_argument("--to-earliest", action="store_true", help="the first record held")
    target.add_argument("--to-latest", action="store_true", help="the end (skip everything)")
    reset.add_argument(
        "--partition",
        metavar="P",
        type=int,
        action="append",
        help="only this partition (repeatable; default: every partition)",
    )
    reset.add_argument(
        "--allow-skip",
        action="store_true",
        help="with --execute: commit a plan that moves past records (they are never applied)",
    )
    _add_group_option(reset)
    add_write_options(reset)
    reset.set_defaults(handler=_reset)


def _add_group_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group",
        metavar="G",
        help="the consumer group (default: STOCKWORKER_GROUP_ID, as the worker uses)",
    )


def _group(settings: Settings, args: argparse.Namespace) -> str:
    return str(args.group) if args.group else settings.group_id


# show


def _show(settings: Settings, args: argparse.Namespace) -> int:
    group = _group(settings, args)
    topic = Topics(settings.topic_prefix).commands
    description, states = asyncio.run(_read_group(settings, group, topic))
    owners = description.owners(topic)
    rows = [
        {
            "partition": s.partition,
            "committed": s.committed,
            "beginning": s.beginning,
            "end": s.end,
            "lag": s.lag,
            "owner": owners[s.partition].label() if s.partition in owners else None,
        }
        for s in states
    ]
    totals = {
        "partitions": len(states),
        "committed": sum(s.committed or 0 for s in states),
        "end": sum(s.end for s in states),
        "lag": sum(s.lag for s in states),
    }
    if args.json:
        print_json(
            {
                "group": group,
                "topic": topic,
                "state": description.state,
                "members": _members(description, topic),
                "partitions": rows,
                "totals": totals,
            }
        )
        return EXIT_OK
    print(_group_line(description, topic))
    print(f"{'partition':>9} {'committed':>10} {'beginning':>10} {'end':>10} {'lag':>8}  owner")
    for row in rows:
        committed = "none" if row["committed"] is None else row["committed"]
        print(
            f"{row['partition']:>9} {committed:>10} {row['beginning']:>10} {row['end']:>10} "
            f"{row['lag']:>8}  {row['owner'] or '-'}"
        )
    print(f"{'total':>9} {totals['committed']:>10} {'':>10} {totals['end']:>10} {totals['lag']:>8}")
    return EXIT_OK


def _members(description: GroupDescription, topic: str) -> list[dict[str, Any]]:
    return [
        {
            "member_id": m.member_id,
            "client_id": m.client_id,
            "host": m.host,
            "partitions": m.partitions(topic),
        }
        for m in description.members
    ]


def _group_line(description: GroupDescription, topic: str) -> str:
    count = len(description.members)
    unknown = (
        " (the broker knows no such group: check --group / STOCKWORKER_GROUP_ID)"
        if description.state == "Dead"
        else ""
    )
    return (
        f"group {description.group_id} on {topic}: state {description.state}, "
        f"{count} member{'' if count == 1 else 's'}{unknown}"
    )


async def _read_group(
    settings: Settings, group: str, topic: str
) -> tuple[GroupDescription, list[PartitionOffsets]]:
    async with ConsumerGroups(settings.kafka()) as groups:
        return await _snapshot(groups, group, topic)


async def _snapshot(
    groups: ConsumerGroups, group: str, topic: str
) -> tuple[GroupDescription, list[PartitionOffsets]]:
    try:
        bounds = await groups.bounds(topic)
    except UnknownTopicOrPartition as exc:
        raise BadInput(f"{exc} (create it with `stockworker topics`)") from None
    committed = await groups.committed(group, topic)
    description = await groups.describe(group)
    states = [
        PartitionOffsets(p, committed.get(p), b.beginning, b.end) for p, b in sorted(bounds.items())
    ]
    return description, states


# reset


def _request(args: argparse.Namespace) -> ResetRequest:
    partitions = tuple(args.partition) if args.partition else None
    if partitions is not None and any(p < 0 for p in partitions):
        raise BadInput(f"--partition must be 0 or more, got {min(partitions)}")
    if args.to_datetime is not None:
        moment = parse_moment(args.to_datetime, "--to-datetime")
        return ResetRequest(ResetKind.TO_DATETIME, partitions, moment=moment)
    if args.to_offset is not None:
        offset, offsets = _offsets(args.to_offset)
        return ResetRequest(ResetKind.TO_OFFSET, partitions, offset=offset, offsets=offsets)
    if args.shift_by is not None:
        return ResetRequest(ResetKind.SHIFT_BY, partitions, shift=args.shift_by)
    if args.to_earliest:
        return ResetRequest(ResetKind.TO_EARLIEST, partitions)
    return ResetRequest(ResetKind.TO_LATEST, partitions)


def _offsets(given: list[str]) -> tuple[int | None, dict[int, int]]:
    """`--to-offset N` (every selected partition) and `--to-offset P=N` (partition P)."""
    everywhere: int | None = None
    per_partition: dict[int, int] = {}
    for text in given:
        try:
            if "=" in text:
                p, n = (int(part) for part in text.split("=", 1))
                if p in per_partition:
                    raise BadInput(f"--to-offset names partition {p} twice")
                per_partition[p] = n
            else:
                if everywhere is not None:
                    raise BadInput("--to-offset N given twice (use P=N for one partition)")
                everywhere = int(text)
        except ValueError:
            raise BadInput(f"--to-offset {text!r} is not N or P=N (whole numbers)") from None
    values = [*per_partition.values(), *([] if everywhere is None else [everywhere])]
    keys = list(per_partition)
    if any(v < 0 for v in values) or any(p < 0 for p in keys):
        raise BadInput("--to-offset takes offsets and partitions of 0 or more")
    return everywhere, per_partition


def _reset(settings: Settings, args: argparse.Namespace) -> int:
    request = _request(args)
    group = _group(settings, args)
    topic = Topics(settings.topic_prefix).commands
    return asyncio.run(_run_reset(settings, args, group, topic, request))


async def _run_reset(
    settings: Settings, args: argparse.Namespace, group: str, topic: str, request: ResetRequest
) -> int:
    async with (
        audited(settings.database_url, "offsets reset", args) as run,
        ConsumerGroups(settings.kafka()) as groups,
    ):
        description, states = await _snapshot(groups, group, topic)
        at_time = (
            await groups.offsets_for_time(topic, request.moment)
            if request.moment is not None
            else None
        )
        try:
            plan = plan_reset(group, topic, states, request, at_time)
        except PlanError as exc:
            raise BadInput(str(exc)) from None
        run.plan_fingerprint = fingerprint(plan.identity())
        run.counts = {**plan.counts(), "committed": 0}
        refusal = _refusal(description, topic) if description.active else None
        if args.json:
            document = _plan_document(plan, description, run.plan_fingerprint)
        else:
            _print_plan(plan, description, run.plan_fingerprint)
        if refusal is None:
            refusal = plan.skip_refusal(args.allow_skip)
        if not args.execute:
            if args.json:
                print_json({**document, "executed": False, "refused": refusal})
            else:
                if refusal:
                    print(f"warning: --execute would be refused now: {refusal}")
                print("dry run: nothing changed (add --execute to commit these offsets)")
            return EXIT_OK
        if refusal is not None:
            if args.json:
                print_json({**document, "executed": False, "refused": refusal})
            raise Refused(refusal)
        try:
            await groups.commit(group, topic, plan.new_offsets())
        except GroupActive as exc:
            raise Refused(f"{exc}; stop the workers first") from None
        except CommitTimedOut as exc:
            raise OperatorError(str(exc)) from None
        run.counts["committed"] = len(plan.new_offsets())
        if args.json:
            print_json({**document, "executed": True, "refused": None})
        else:
            print(f"committed new offsets for {len(plan.new_offsets())} partition(s) of {group}")
        return EXIT_OK


def _refusal(description: GroupDescription, topic: str) -> str:
    members = ", ".join(
        f"{m.label()} owning {m.partitions(topic) or 'no partition'}" for m in description.members
    )
    return (
        f"group {description.group_id} is {description.state} with "
        f"{len(description.members)} member(s){': ' + members if members else ''}; "
        "stop the workers first"
    )


def _plan_document(plan: ResetPlan, description: GroupDescription, digest: str) -> dict[str, Any]:
    return {
        "group": plan.group,
        "topic": plan.topic,
        "state": description.state,
        "members": _members(description, plan.topic),
        "reset": plan.request.describe(),
        "fingerprint": digest,
        "partitions": [p.document() for p in plan.partitions],
        "totals": plan.counts(),
        "note": DUPLICATES_NOTE if plan.reread else None,
        "warning": plan.skip_warning(),
    }


def _print_plan(plan: ResetPlan, description: GroupDescription, digest: str) -> None:
    print(_group_line(description, plan.topic))
    print(f"reset {plan.request.describe()} (plan {digest})")
    print(f"{'partition':>9} {'current':>10}    {'new':>10}  effect")
    for p in plan.partitions:
        current = "none" if p.committed is None else str(p.committed)
        if p.reread:
            effect = f"re-read {p.reread}"
        elif p.skip:
            effect = f"skip {p.skip}"
        else:
            effect = "commit (no records move)" if p.changes else "unchanged"
        notes = f"  [{'; '.join(p.notes)}]" if p.notes else ""
        print(f"{p.partition:>9} {current:>10} -> {p.new:>10}  {effect}{notes}")
    print(
        f"total: {len(plan.changed)} of {len(plan.partitions)} partition(s) change, "
        f"{plan.reread} record(s) to re-read, {plan.skip} to skip"
    )
    if plan.reread:
        print(DUPLICATES_NOTE)
    warning = plan.skip_warning()
    if warning:
        print(warning)
