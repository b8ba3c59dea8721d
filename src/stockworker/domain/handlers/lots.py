"""Handler of a lot's expiry, sent by the worker's lot-expiry sweeper (ExpireLot).

The domain reads no clock: whether a lot is due is judged by the command's occurred_at
(the sweeper's now), as a date in UTC.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, timedelta
from types import MappingProxyType

from stockworker.contract.codes import RejectionCode
from stockworker.contract.commands import ExpireLot
from stockworker.domain.handlers.common import back_order_shortfall, changed, single
from stockworker.domain.outcome import Decision, Rejection
from stockworker.domain.policy import Policy
from stockworker.domain.position import PositionKey
from stockworker.domain.state import StockView
from stockworker.domain.tracking import expired_units

LOT_EXPIRING = "LOT_EXPIRING"
LOT_EXPIRED = "LOT_EXPIRED"


def expire_lot(view: StockView, cmd: ExpireLot, policy: Policy) -> Decision:
    position = view.position(PositionKey(cmd.sku, cmd.location))
    holding = position.holdings.get(cmd.lot)
    where = f"{cmd.sku!r} at {cmd.location!r}"
    if holding is None or holding.kind != "lot":
        return Rejection(RejectionCode.LOT_NOT_FOUND, f"no lot {cmd.lot!r} in stock of {where}")
    expires_on = holding.expires_on
    if expires_on is None:
        return _not_due(cmd, "it has no expiry date")
    today = cmd.occurred_at.astimezone(UTC).date()
    if cmd.stage == "expiring":
        if holding.warned or holding.expired:
            return _not_due(cmd, "it was reported already")
        if today < expires_on - timedelta(days=policy.lot_expiring_days):
            return _not_due(cmd, f"it expires on {expires_on}")
        flagged, reason = replace(holding, warned=True), LOT_EXPIRING
    else:
        if holding.expired:
            return _not_due(cmd, "it expired already")
        if today <= expires_on:
            return _not_due(cmd, f"it expires at the end of {expires_on}")
        flagged, reason = replace(holding, warned=True, expired=True), LOT_EXPIRED
    holdings = dict(position.holdings)
    holdings[cmd.lot] = flagged
    after = back_order_shortfall(
        replace(
            position,
            holdings=MappingProxyType(holdings),
            expired=expired_units(holdings.values()),
        )
    )
    return single(
        changed(
            position,
            reason=reason,
            holdings=after.holdings,
            expired=after.expired,
            reserved=after.reserved,
            back_ordered=after.back_ordered,
            reservations=after.reservations,
        )
    )


def _not_due(cmd: ExpireLot, why: str) -> Rejection:
    return Rejection(
        RejectionCode.LOT_NOT_DUE,
        f"lot {cmd.lot!r} of {cmd.sku!r} at {cmd.location!r} is not {cmd.stage}: {why}",
    )
