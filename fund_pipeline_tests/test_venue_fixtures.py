"""The venues' documented frames (fixtures/venues/*.json) through the adapters, and the emulator's frames beside them.

Each fixture holds frames in the format of the venue's documentation example, the intervals the
collector would have learned over REST, and the prints a reader of the documentation expects. The
emulator writes its frames with the same adapters' encoders: they must carry the same fields with
the same JSON types as the documented ones, or the tests against the emulator prove nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.domain.time import NS_PER_MS
from fund_pipeline.venues.adapter import EmulatedSession
from fund_pipeline.venues.registry import WS_VENUES, adapter
from fund_pipeline.venues.streams import StreamParser

FIXTURES = Path(__file__).parent / "fixtures" / "venues"


def fixture(venue: str) -> dict[str, Any]:
    (path,) = FIXTURES.glob(f"{venue}_*.json")
    return json.loads(path.read_text())


def unified(venue: str, native: str) -> str:
    found = adapter(venue).unified_symbol(native)
    assert found is not None
    return found[0]


def parser_for(doc: dict[str, Any]) -> StreamParser:
    venue = doc["venue"]
    intervals = {unified(venue, n): h for n, h in doc["intervals"].items()}
    return StreamParser(venue, intervals, wanted={unified(venue, n) for n in doc["wanted"]})


def as_expected(p: FundingPrint) -> dict[str, Any]:
    def price(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {
        "symbol": p.symbol, "base": p.base, "funding_time_ms": p.funding_time // NS_PER_MS,
        "ts_ms": p.ts // NS_PER_MS, "rate": p.rate, "interval_h": p.interval_h,
        "mark_price": price(p.mark_price), "index_price": price(p.index_price),
    }  # fmt: skip


@pytest.mark.parametrize("venue", WS_VENUES)
def test_documented_frames_parse_into_the_documented_prints(venue):
    doc = fixture(venue)
    stream = parser_for(doc)
    received = doc["received_at_ms"] * NS_PER_MS
    prints = [p for frame in doc["frames"] for p in stream.parse(json.dumps(frame), received)]
    assert [as_expected(p) for p in prints] == doc["expected"]
    assert all(p.venue == venue and p.kind == "predicted" and p.source == "ws" for p in prints)
    assert all(p.received_at == received for p in prints)
    assert stream.ctx.skipped == doc["skipped"]
    assert stream.ctx.bad_items == []


def shape(value: Any) -> Any:
    """A JSON value's fields and types: dicts by key, lists by their first item, scalars by type name."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def data_frame(doc: dict[str, Any]) -> Any:
    """The fixture's first data frame for one symbol (a whole-market frame's first item)."""
    frame = doc["frames"][0]
    return frame[0] if isinstance(frame, list) else frame


def emulated_frame(venue: str, symbol: str) -> Any:
    """What the emulator pushes for one subscribed symbol: the adapter's encoder on a simulated print."""
    venue_adapter = adapter(venue)
    session = EmulatedSession(venue, lambda native: symbol)
    session.symbols[symbol] = "subscribed"
    base = symbol.partition("/")[0]
    funding = 1_700_726_400_000 * NS_PER_MS
    p = FundingPrint(venue, symbol, base, "predicted", funding, funding - 3_600_000 * NS_PER_MS, 0, 1.25e-4, 8.0,
                     60_000.5, 60_010.25, "ws")  # fmt: skip
    (frame,) = venue_adapter.encode_prints([p], session)
    return json.loads(frame)


@pytest.mark.parametrize("venue", WS_VENUES)
def test_the_emulators_frames_have_the_documented_fields_and_types(venue):
    doc = fixture(venue)
    documented = data_frame(doc)
    emulated = emulated_frame(venue, unified(venue, doc["wanted"][0]))
    assert shape(emulated) == shape(documented)


@pytest.mark.parametrize("venue", WS_VENUES)
def test_the_emulators_frames_parse_back_into_what_was_encoded(venue):
    symbol = unified(venue, fixture(venue)["wanted"][0])
    frame = emulated_frame(venue, symbol)
    (parsed,) = StreamParser(venue, {symbol: 8.0}).parse(json.dumps(frame), 5)
    assert (parsed.symbol, parsed.rate) == (symbol, 1.25e-4)
    if venue != "hyperliquid":  # its frames carry no times: funding is the hour after receipt
        assert parsed.funding_time == 1_700_726_400_000 * NS_PER_MS
