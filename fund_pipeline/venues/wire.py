"""The shared rules for fields of the venues' frames: numbers, rates, intervals, times, per-item parsing.

Adapters parse their venue's messages with these, so every venue rejects the same bad values the
same way (see `fund_pipeline.venues.streams` for what a print must satisfy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.domain.time import MAX_EPOCH_MS, MAX_INTERVAL_H, MIN_INTERVAL_H, NS_PER_MS
from fund_pipeline.venues.adapter import ParseContext, PremiumSample


class MalformedMessage(ValueError):
    """A frame (or one item of it) that is not valid JSON or not in the venue's format."""


class UnknownMessage(MalformedMessage):
    """Valid JSON in no shape this parser knows (new event type, error frame ...)."""


class NoInterval(MalformedMessage):
    """A print whose funding interval neither the message nor the venue's REST metadata gives."""


class NoContractSize(MalformedMessage):
    """A size in contracts of a symbol whose contract size the caller has not learned (REST metadata)."""


def number(value: Any) -> float:
    """A JSON number or decimal string as float; a bool is a wrong type, not 0 or 1."""
    if isinstance(value, bool):
        raise MalformedMessage(f"boolean {value!r} where a number belongs")
    return float(value)


def optional_price(value: Any) -> float:
    """An optional price: NaN when absent."""
    if value is None or value == "":
        return math.nan
    return number(value)


def funding_rate(value: Any) -> float:
    """A usable funding rate: finite and > -1, else the item is malformed (it must never reach a builder)."""
    rate = number(value)
    if not (math.isfinite(rate) and rate > -1.0):
        raise MalformedMessage(f"unusable funding rate {value!r}")
    return rate


def interval_hours(hours: float, what: str) -> float:
    """A funding interval between a minute and a day; anything else is a broken field."""
    if not MIN_INTERVAL_H <= hours <= MAX_INTERVAL_H:
        raise MalformedMessage(f"{what}: funding interval {hours!r} h outside [{MIN_INTERVAL_H:.4f}, {MAX_INTERVAL_H}]")
    return hours


def time_ns(value: Any) -> int:
    """Venue epoch milliseconds (number or digit string) as int ns, within what int64 ns can hold."""
    if isinstance(value, bool):
        raise MalformedMessage(f"boolean {value!r} where a time belongs")
    ms = int(value)
    if not 0 < ms <= MAX_EPOCH_MS:
        raise MalformedMessage(f"time {value!r} ms is out of range")
    return ms * NS_PER_MS


def known_interval(ctx: ParseContext, symbol: str) -> float:
    """The caller's interval for a symbol whose messages carry none; NoInterval when nobody knows it."""
    interval = ctx.intervals.get(symbol)
    if interval is None:
        raise NoInterval(f"{ctx.venue}: no funding interval known for {symbol} (REST metadata not loaded)")
    return interval


def parse_items(
    items: list[Any],
    ctx: ParseContext,
    one: Callable[[Any, int, ParseContext], FundingPrint | None],
    received_at_ns: int,
) -> list[FundingPrint]:
    """Each item of a whole-market frame on its own: `one(item)` is its print or None (skipped).

    A bad item goes to `ctx.bad_items` with its reason; the frame's other prints still count. A
    frame of one item is that item: its error is the frame's.
    """
    if len(items) == 1:
        found = one(items[0], received_at_ns, ctx)
        return [] if found is None else [found]
    out = []
    for item in items:
        try:
            found = one(item, received_at_ns, ctx)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as bad:
            reason = str(bad) if isinstance(bad, MalformedMessage) else f"{type(bad).__name__}: {bad}"
            ctx.bad_items.append((f"{ctx.venue}: {reason}", item))
            continue
        if found is not None:
            out.append(found)
    return out


Item = TypeVar("Item")


def collect_items(
    items: list[Any],
    ctx: ParseContext,
    one: Callable[[Any, int, ParseContext], list[Item]],
    received_at_ns: int,
) -> list[Item]:
    """`parse_items` for items that each give several records (an OKX liquidation item lists its fills).

    A bad item goes to `ctx.bad_items`; a frame of one item is that item, its error the frame's.
    """
    if len(items) == 1:
        return one(items[0], received_at_ns, ctx)
    out: list[Item] = []
    for item in items:
        try:
            out.extend(one(item, received_at_ns, ctx))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as bad:
            reason = str(bad) if isinstance(bad, MalformedMessage) else f"{type(bad).__name__}: {bad}"
            ctx.bad_items.append((f"{ctx.venue}: {reason}", item))
    return out


def liquidated_side(value: Any, sides: dict[str, str], what: str) -> str:
    """The liquidated position's side ("long" | "short") from the venue's word for it, by its own mapping."""
    side = sides.get(value) if isinstance(value, str) else None
    if side is None:
        raise MalformedMessage(f"{what}: side {value!r} is none of {sorted(sides)}")
    return side


def positive(value: Any, what: str) -> float:
    """A price or size that must be a finite number above zero."""
    found = number(value)
    if not (math.isfinite(found) and found > 0):
        raise MalformedMessage(f"{what}: {value!r} is not a positive number")
    return found


def unified(adapter: Any, ctx: ParseContext, native: Any) -> tuple[str, str] | None:
    """The venue id's (unified symbol, base), cached per connection; None for ids that are not linear perps."""
    if not isinstance(native, str):
        raise MalformedMessage(f"{ctx.venue}: symbol {native!r} is not a string")
    if native in ctx.symbols:
        return ctx.symbols[native]
    found = ctx.symbols[native] = adapter.unified_symbol(native)
    return found


def wanted(ctx: ParseContext, found: tuple[str, str] | None) -> bool:
    """Whether a print of `found` belongs on this connection; counts dated contracts and unconfigured symbols."""
    if found is None:
        ctx.skip("not_a_perp")
        return False
    if ctx.wanted is not None and found[0] not in ctx.wanted:
        ctx.skip("unconfigured")
        return False
    return True


def emit_number(value: float) -> str:
    """How venues send a number: a decimal string, "" when absent (NaN); repr round-trips a float exactly."""
    value = float(value)
    return "" if math.isnan(value) else repr(value)


def split_linear(native: str, quotes: tuple[str, ...]) -> tuple[str, str] | None:
    """BTCUSDT → (BTC/USDT:USDT, BTC) for the given quotes; None when no quote matches."""
    for quote in quotes:
        if native.endswith(quote) and len(native) > len(quote):
            base = native[: -len(quote)]
            return f"{base}/{quote}:{quote}", base
    return None


def premium_sample(known_ms: Any, premium: Any, what: str) -> PremiumSample:
    """A premium-history row as (the instant it is known, its value): epoch milliseconds and a finite number."""
    try:
        value = number(premium)
        known_ns = time_ns(known_ms)
    except (TypeError, ValueError) as bad:
        raise MalformedMessage(f"{what}: unusable row ({bad})") from bad
    if not math.isfinite(value):
        raise MalformedMessage(f"{what}: premium {premium!r} is not a finite number")
    return PremiumSample(known_ns // NS_PER_MS, value)


def premium_list(rows: Any, what: str) -> list:
    """The rows of a premium-history response, which must be a list."""
    if not isinstance(rows, list):
        raise MalformedMessage(f"{what}: rows are {type(rows).__name__}, not a list")
    return rows
