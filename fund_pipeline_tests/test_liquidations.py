"""Liquidations: the venues' documented frames parsed by their adapters, the size rule, the hourly aggregate by hand."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

from fund_pipeline.domain.liquidations import (
    LIQUIDATION_COLUMNS,
    LONG,
    SHORT,
    Liquidation,
    liquidations_frame,
    liquidations_hourly,
    merge_liquidations,
    sized,
)
from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.venues.adapter import EmulatedSession
from fund_pipeline.venues.registry import adapter
from fund_pipeline.venues.streams import MalformedMessage, StreamParser
from fund_pipeline.venues.wire import NoContractSize

RECEIVED = 1_700_000_000_000_000_000

# Binance USDⓈ-M "Liquidation Order Streams", the documented response example.
BINANCE_FORCE_ORDER: dict[str, Any] = {
    "e": "forceOrder",
    "E": 1568014460893,
    "o": {
        "s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910", "ap": "9910",
        "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893,
    },
}  # fmt: skip
# Binance COIN-M's documented example (a dated BTCUSD_200925), on the perpetual: quantities count 100 USD contracts.
BINANCE_COIN_M: dict[str, Any] = {
    "e": "forceOrder",
    "E": 1591154240950,
    "o": {
        "s": "BTCUSD_PERP", "ps": "BTCUSD", "S": "BUY", "o": "LIMIT", "f": "IOC", "q": "1", "p": "9425.5",
        "ap": "9496.5", "X": "FILLED", "l": "1", "z": "1", "T": 1591154240949,
    },
}  # fmt: skip
# Bybit v5 "All Liquidation" (as ccxt's handler documents the frame).
BYBIT_ALL_LIQUIDATION: dict[str, Any] = {
    "topic": "allLiquidation.ROSEUSDT",
    "type": "snapshot",
    "ts": 1739502303204,
    "data": [{"T": 1739502302929, "s": "ROSEUSDT", "S": "Sell", "v": "20000", "p": "0.04499"}],
}
# OKX v5 "Liquidation orders channel" (as ccxt's handler documents the frame).
OKX_LIQUIDATION_ORDERS: dict[str, Any] = {
    "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
    "data": [
        {
            "details": [
                {"bkLoss": "0", "bkPx": "0.007831", "ccy": "", "posSide": "short", "side": "buy", "sz": "13",
                 "ts": "1692266434010"},
            ],
            "instFamily": "IOST-USDT", "instId": "IOST-USDT-SWAP", "instType": "SWAP", "uly": "IOST-USDT",
        }
    ],
}  # fmt: skip


def parsed(venue: str, frame: object, **sizes: float) -> tuple[list, StreamParser]:
    parser = StreamParser(venue)
    parser.ctx.contract_sizes.update(sizes)
    prints = parser.parse(json.dumps(frame), RECEIVED)
    return prints, parser


def test_binance_force_order_is_the_order_side():
    prints, parser = parsed("binance", BINANCE_FORCE_ORDER)
    assert prints == []
    (liq,) = parser.ctx.liquidations
    assert liq == Liquidation(
        "binance",
        "BTC/USDT:USDT",
        "BTC",
        1568014460893 * 1_000_000,
        RECEIVED,
        LONG,
        9910.0,
        0.014,
        0.014 * 9910.0,
        "ws",
    )


def test_binance_coin_m_counts_contracts_of_100_usd():
    _, parser = parsed("binance", BINANCE_COIN_M)
    (liq,) = parser.ctx.liquidations
    assert (liq.symbol, liq.side, liq.price) == ("BTC/USD:BTC", SHORT, 9496.5)
    assert liq.notional_usd == 100.0
    assert liq.quantity == pytest.approx(100.0 / 9496.5)


def test_binance_dated_contract_is_skipped_and_counted():
    dated = {**BINANCE_COIN_M, "o": {**BINANCE_COIN_M["o"], "s": "BTCUSD_200925"}}
    _, parser = parsed("binance", dated)
    assert parser.ctx.liquidations == []
    assert parser.ctx.skipped == {"not_a_perp": 1}


def test_bybit_all_liquidation_is_the_position_side():
    _, parser = parsed("bybit", BYBIT_ALL_LIQUIDATION)
    (liq,) = parser.ctx.liquidations
    # "When you receive a Buy update, this means that a long position has been liquidated": Sell is a short.
    assert (liq.symbol, liq.base, liq.side, liq.ts) == ("ROSE/USDT:USDT", "ROSE", SHORT, 1739502302929 * 1_000_000)
    assert (liq.quantity, liq.price) == (20000.0, 0.04499)
    assert liq.notional_usd == pytest.approx(899.8)


def test_okx_liquidation_orders_count_contracts_of_ctval():
    _, parser = parsed("okx", OKX_LIQUIDATION_ORDERS, **{"IOST/USDT:USDT": 1000.0})
    (liq,) = parser.ctx.liquidations
    assert (liq.symbol, liq.side, liq.price, liq.ts) == ("IOST/USDT:USDT", SHORT, 0.007831, 1692266434010 * 1_000_000)
    assert liq.quantity == 13_000.0
    assert liq.notional_usd == pytest.approx(13_000 * 0.007831)


def test_okx_net_mode_takes_the_order_side():
    detail = {**OKX_LIQUIDATION_ORDERS["data"][0]["details"][0], "posSide": "net", "side": "sell"}
    frame = {**OKX_LIQUIDATION_ORDERS, "data": [{**OKX_LIQUIDATION_ORDERS["data"][0], "details": [detail]}]}
    _, parser = parsed("okx", frame, **{"IOST/USDT:USDT": 1000.0})
    assert [liq.side for liq in parser.ctx.liquidations] == [LONG]


def test_okx_without_a_contract_size_is_malformed():
    with pytest.raises(NoContractSize, match="ctVal"):
        parsed("okx", OKX_LIQUIDATION_ORDERS)


@pytest.mark.parametrize(
    ("venue", "frame", "match"),
    [
        ("binance", {**BINANCE_FORCE_ORDER, "o": {**BINANCE_FORCE_ORDER["o"], "S": "HOLD"}}, "side 'HOLD'"),
        ("binance", {**BINANCE_FORCE_ORDER, "o": {**BINANCE_FORCE_ORDER["o"], "z": "0"}}, "not a positive number"),
        ("binance", {"e": "forceOrder", "E": 1}, "KeyError"),
        ("bybit", {**BYBIT_ALL_LIQUIDATION, "data": {"s": "ROSEUSDT"}}, "not a list"),
        ("bybit", {**BYBIT_ALL_LIQUIDATION, "data": [{**BYBIT_ALL_LIQUIDATION["data"][0], "v": "-5"}]}, "positive"),
        ("bybit", {**BYBIT_ALL_LIQUIDATION, "data": [{**BYBIT_ALL_LIQUIDATION["data"][0], "p": True}]}, "boolean"),
        ("okx", {**OKX_LIQUIDATION_ORDERS, "data": [{"instId": "IOST-USDT-SWAP"}]}, "KeyError"),
    ],
)
def test_malformed_liquidation_frames(venue, frame, match):
    with pytest.raises(MalformedMessage, match=match):
        parsed(venue, frame, **{"IOST/USDT:USDT": 1000.0})


def test_bad_item_of_a_many_item_frame_is_set_aside():
    good = BYBIT_ALL_LIQUIDATION["data"][0]
    frame = {**BYBIT_ALL_LIQUIDATION, "data": [good, {**good, "S": "Up"}, good]}
    _, parser = parsed("bybit", frame)
    assert len(parser.ctx.liquidations) == 2
    assert [reason for reason, _ in parser.ctx.bad_items] == [
        "bybit: bybit allLiquidation ROSE/USDT:USDT: side 'Up' is none of ['Buy', 'Sell']"
    ]


def test_unwanted_symbols_are_skipped():
    parser = StreamParser("bybit", wanted={"BTC/USDT:USDT"})
    parser.parse(json.dumps(BYBIT_ALL_LIQUIDATION), RECEIVED)
    assert parser.ctx.liquidations == []
    assert parser.ctx.skipped == {"unconfigured": 1}


def _subscribed(venue: str) -> EmulatedSession:
    venue_adapter = adapter(venue)
    session = EmulatedSession(venue, lambda native: (venue_adapter.unified_symbol(native) or (None,))[0])
    for frame in venue_adapter.liquidation_subscribe_messages(["BTC/USDT:USDT", "ETH/USDT:USDT"]):
        replies = venue_adapter.serve_request(frame, session)
        assert all("error" not in r and '"success": false' not in r for r in replies), replies
    return session


@pytest.mark.parametrize("venue", ["binance", "bybit", "okx"])
def test_emulator_frames_parse_back(venue):
    """What the emulator pushes in the venue's format comes back as the same liquidations through the client."""
    rows = [
        Liquidation(venue, "BTC/USDT:USDT", "BTC", 1_767_225_600_000 * 1_000_000, 0, LONG, 87_000.5, 0.25, 21_750.125,
                    "sim"),
        Liquidation(venue, "ETH/USDT:USDT", "ETH", 1_767_225_601_000 * 1_000_000, 0, SHORT, 2_950.0, 3.0, 8_850.0,
                    "sim"),
    ]  # fmt: skip
    session = _subscribed(venue)
    parser = StreamParser(venue)
    parser.ctx.contract_sizes.update({"BTC/USDT:USDT": 0.01, "ETH/USDT:USDT": 0.01})
    for frame in adapter(venue).encode_liquidations(rows, session):
        assert parser.parse(frame, RECEIVED) == []
    got = sorted(parser.ctx.liquidations, key=lambda liq: liq.ts)
    assert [(g.symbol, g.side, g.ts, g.price, g.received_at, g.source) for g in got] == [
        (r.symbol, r.side, r.ts, r.price, RECEIVED, "ws") for r in rows
    ]
    for g, r in zip(got, rows, strict=True):
        assert g.quantity == pytest.approx(r.quantity, rel=1e-12)
        assert g.notional_usd == pytest.approx(r.notional_usd, rel=1e-12)


def test_okx_rest_history_page():
    body = {"code": "0", "msg": "", "data": OKX_LIQUIDATION_ORDERS["data"]}
    okx = adapter("okx")
    parser = StreamParser("okx")
    parser.ctx.contract_sizes["IOST/USDT:USDT"] = 1000.0
    (liq,) = okx.parse_liquidation_history(body, RECEIVED, parser.ctx)
    assert (liq.source, liq.side, liq.quantity) == ("rest", SHORT, 13_000.0)
    assert okx.liquidation_history_params("IOST/USDT:USDT", before_ms=5) == {
        "instType": "SWAP", "instFamily": "IOST-USDT", "state": "filled", "limit": "100", "after": "5",
    }  # fmt: skip
    with pytest.raises(MalformedMessage, match="unexpected answer"):
        okx.parse_liquidation_history({"code": "51000", "msg": "Parameter instFamily error", "data": []}, 0, parser.ctx)


def test_sized_by_contract_rule():
    assert sized("BTC/USDT:USDT", 3, 0.01, 50_000.0) == (0.03, 1_500.0)
    inverse = sized("BTC/USD:BTC", 3, 100.0, 50_000.0)
    assert inverse.notional_usd == 300.0
    assert inverse.quantity == pytest.approx(0.006)
    with pytest.raises(ValueError, match="must all be positive"):
        sized("BTC/USDT:USDT", 0, 1.0, 1.0)


def _at(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def test_hourly_aggregate_by_hand():
    rows = [
        Liquidation("binance", "BTC/USDT:USDT", "BTC", _at("2026-01-01 00:10"), 0, LONG, 100.0, 2.0, 200.0, "sim"),
        Liquidation("binance", "BTC/USDT:USDT", "BTC", _at("2026-01-01 00:50"), 0, SHORT, 100.0, 0.5, 50.0, "sim"),
        Liquidation("binance", "BTC/USD:BTC", "BTC", _at("2026-01-01 00:59:59"), 0, LONG, 100.0, 1.0, 100.0, "sim"),
        Liquidation("binance", "BTC/USDT:USDT", "BTC", _at("2026-01-01 02:00"), 0, SHORT, 100.0, 1.0, 100.0, "sim"),
        Liquidation("okx", "BTC/USDT:USDT", "BTC", _at("2026-01-01 00:30"), 0, SHORT, 100.0, 7.0, 700.0, "sim"),
        # outside [start, end)
        Liquidation("okx", "BTC/USDT:USDT", "BTC", _at("2026-01-02 00:00"), 0, SHORT, 100.0, 1.0, 100.0, "sim"),
    ]
    hourly = liquidations_hourly(
        liquidations_frame(rows), pd.Timestamp(_at("2026-01-01")), pd.Timestamp(_at("2026-01-02"))
    )
    expected = pd.DataFrame(
        {
            "venue": ["binance", "binance", "okx"],
            "base": ["BTC", "BTC", "BTC"],
            "ts": pd.to_datetime(["2026-01-01 00:00", "2026-01-01 02:00", "2026-01-01 00:00"], utc=True),
            "buy_usd": [50.0, 100.0, 700.0],
            "sell_usd": [300.0, 0.0, 0.0],
            "count": [3, 1, 1],
        }
    )
    pd.testing.assert_frame_equal(hourly, expected, check_dtype=False)
    assert hourly["count"].dtype == "int64"


def test_empty_and_bad_frames():
    empty = liquidations_hourly(liquidations_frame([]), pd.Timestamp(0, tz="UTC"), pd.Timestamp(1, tz="UTC"))
    assert list(empty.columns) == ["venue", "base", "ts", "buy_usd", "sell_usd", "count"] and empty.empty
    bad = liquidations_frame([]).reindex([0]).fillna({"side": "up"})
    with pytest.raises(SchemaError, match="side must be one of"):
        merge_liquidations(bad.assign(venue="x", symbol="y", base="z", ts=0, received_at=0, source="sim"))


def test_merge_keeps_one_report_per_liquidation():
    one = Liquidation("okx", "BTC/USDT:USDT", "BTC", _at("2026-01-01 00:30"), 5, SHORT, 100.0, 7.0, 700.0, "ws")
    merged = merge_liquidations(
        liquidations_frame([one]), liquidations_frame([one._replace(received_at=0, source="rest")])
    )
    assert len(merged) == 1 and merged["source"].tolist() == ["ws"]
    assert list(merged.columns) == LIQUIDATION_COLUMNS
    assert math.isclose(merged["notional_usd"].sum(), 700.0)
