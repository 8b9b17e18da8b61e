"""Parsing the venues' WebSocket frames: the shared field rules and the per-connection parser.

Every data message becomes predicted FundingPrint records (times as int nanoseconds UTC): the
exchange time of the message as `ts`, the local receive time as `received_at`. `funding_time`
is the settlement the venue announces (T, nextFundingTime, fundingTime) as sent: snapping it to
the grid of an assumed interval would, when the assumption is wrong, move it before the message
itself. Values a builder cannot take (non-finite rates, rates <= -1, intervals outside a
minute..a day, times outside int64 ns, booleans for numbers) make the item malformed. Parsing is
plain dict work, no pandas: a 300-symbol `!markPrice@arr` frame must cost well under a
millisecond per symbol. What each venue sends is in its adapter (`fund_pipeline.venues.<venue>`).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.venues.adapter import ParseContext
from fund_pipeline.venues.registry import WS_VENUES, adapter
from fund_pipeline.venues.wire import MalformedMessage, NoInterval, UnknownMessage

__all__ = ["MalformedMessage", "NoInterval", "StreamParser", "UnknownMessage", "parse_message", "subscribe_messages"]


def subscribe_messages(venue: str, symbols: list[str], all_market: bool = False) -> list[str]:
    """Frames that subscribe to the funding stream of `symbols` (ccxt unified) on `venue`."""
    return adapter(venue).subscribe_messages(symbols, all_market)


class StreamParser:
    """Parses one connection's frames with its venue's adapter; keeps what it needs across frames.

    `intervals` maps a unified symbol to its funding interval in hours, for venues whose
    messages do not carry it; the caller may update it (e.g. from REST) at any time. `wanted`
    restricts whole-market frames to the configured symbols (others are skipped and counted).
    """

    def __init__(self, venue: str, intervals: dict[str, float] | None = None, wanted: set[str] | None = None) -> None:
        if venue not in WS_VENUES:
            raise ValueError(f"no WebSocket stream for venue {venue!r}; streams exist for {list(WS_VENUES)}")
        self.venue = venue
        self.adapter = adapter(venue)
        self.ctx = ParseContext(venue, intervals, wanted)

    @property
    def intervals(self) -> dict[str, float]:
        return self.ctx.intervals

    @property
    def control_messages(self) -> int:
        return self.ctx.control_messages

    def parse(self, raw: str | bytes, received_at_ns: int) -> list[FundingPrint]:
        """Prints in the frame; [] for acks and pongs; MalformedMessage when the frame as a whole is bad.

        Bad items of a multi-item frame do not fail the frame: they are left in `ctx.bad_items`.
        """
        if raw in ("pong", b"pong"):
            return self.ctx.control()
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError, RecursionError) as bad:
            raise MalformedMessage(f"{self.venue}: not JSON ({bad})") from bad
        try:
            return self.adapter.parse(msg, received_at_ns, self.ctx)
        except MalformedMessage:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as bad:
            raise MalformedMessage(f"{self.venue}: {type(bad).__name__}: {bad}") from bad


def parse_message(venue: str, raw: str | bytes, received_at: Any, parser: StreamParser | None = None) -> list:
    """One frame to predicted FundingPrint records (int ns times).

    `received_at` is int ns or anything pandas reads as a time. Pass the stream's `parser` to
    keep state across frames (Bybit deltas); without it each frame stands alone.
    """
    if not isinstance(received_at, int):
        received_at = pd.Timestamp(received_at).value
    return (parser or StreamParser(venue)).parse(raw, received_at)
