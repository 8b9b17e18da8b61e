"""Stream parsing on the venues' documented message shapes (literal JSON, not the emulator's output)."""

import json
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.records import PRINT_COLUMNS
from fund_pipeline.venues.registry import WS_VENUES
from fund_pipeline.venues.streams import (
    MalformedMessage,
    NoInterval,
    StreamParser,
    UnknownMessage,
    parse_message,
    subscribe_messages,
)

H = 3_600_000_000_000
MS = 1_000_000
RECEIVED = pd.Timestamp("2024-05-01 07:31:16.5", tz="UTC").value
# What the collector learns over REST for the streams that carry no interval (Binance's fundingInfo
# default, OKX's running window): BTC and ETH settle every 8h.
EIGHT_HOURS = {"BTC/USDT:USDT": 8.0, "ETH/USDT:USDT": 8.0}


def field(row, name):
    return getattr(row, name)


def parser(venue, intervals=None, wanted=None):
    return StreamParser(venue, dict(EIGHT_HOURS if intervals is None else intervals), wanted)


def ts(text):
    return pd.Timestamp(text, tz="UTC").value


# Binance USDⓈ-M "Mark Price Stream", the documented payload (its T is 06:00, off the 8h grid).
BINANCE_DOC = """{
  "e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
  "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000
}"""
BINANCE_BTC = {
    "e": "markPriceUpdate", "E": 1714548676000, "s": "BTCUSDT", "p": "60512.10000000", "i": "60530.48021739",
    "P": "60526.01431584", "r": "0.00010000", "T": 1714550400000,
}  # fmt: skip
BINANCE_ETH = {
    "e": "markPriceUpdate", "E": 1714548676000, "s": "ETHUSDT", "p": "3012.55000000", "i": "3013.69012345",
    "P": "3013.40522212", "r": "-0.00002310", "T": 1714550400000,
}  # fmt: skip

# Bybit v5 public linear `tickers.BTCUSDT`: snapshot, then deltas carrying only changed fields.
BYBIT_SNAPSHOT = """{
  "topic": "tickers.BTCUSDT", "type": "snapshot",
  "data": {
    "symbol": "BTCUSDT", "tickDirection": "PlusTick", "price24hPcnt": "0.017103", "lastPrice": "17216.00",
    "prevPrice24h": "16926.50", "highPrice24h": "17281.50", "lowPrice24h": "16915.00", "prevPrice1h": "17238.00",
    "markPrice": "17217.33", "indexPrice": "17227.36", "openInterest": "68744.761",
    "openInterestValue": "1183601235.91", "turnover24h": "1570383121.943499", "volume24h": "91705.276",
    "nextFundingTime": "1673280000000", "fundingRate": "-0.000212", "fundingIntervalHour": "8",
    "bid1Price": "17215.50", "bid1Size": "84.489", "ask1Price": "17216.00", "ask1Size": "83.020"
  },
  "cs": 24987956059, "ts": 1673272861686
}"""
BYBIT_DELTA_PRICE_ONLY = """{
  "topic": "tickers.BTCUSDT", "type": "delta",
  "data": {"symbol": "BTCUSDT", "markPrice": "17220.10", "indexPrice": "17229.00", "bid1Price": "17219.50"},
  "cs": 24987956100, "ts": 1673272862686
}"""
BYBIT_DELTA_RATE = """{
  "topic": "tickers.BTCUSDT", "type": "delta",
  "data": {"symbol": "BTCUSDT", "fundingRate": "-0.000198", "markPrice": "17221.00"},
  "cs": 24987956200, "ts": 1673272863686
}"""
BYBIT_DELTA_ROLL = """{
  "topic": "tickers.BTCUSDT", "type": "delta",
  "data": {"symbol": "BTCUSDT", "nextFundingTime": "1673294400000", "fundingIntervalHour": "4",
           "fundingRate": "0.0001"},
  "cs": 24987999999, "ts": 1673280000300
}"""

# OKX v5 public `funding-rate` push.
OKX_PUSH = """{
  "arg": {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"},
  "data": [{
    "formulaType": "noRate", "fundingRate": "0.0001875391284828", "fundingTime": "1700726400000",
    "impactValue": "", "instId": "BTC-USDT-SWAP", "instType": "SWAP", "interestRate": "",
    "maxFundingRate": "0.00375", "method": "next_period", "minFundingRate": "-0.00375",
    "nextFundingRate": "0.0002608059239328", "nextFundingTime": "1700755200000",
    "premium": "0.0001233824646391", "settFundingRate": "0.0001699799259033", "settState": "settled",
    "ts": "1700724675402"
  }]
}"""

# Hyperliquid `activeAssetCtx` for a perp: no time in the message.
HYPERLIQUID_CTX = """{
  "channel": "activeAssetCtx",
  "data": {"coin": "BTC", "ctx": {
    "dayNtlVlm": "1169046.29406", "prevDayPx": "15.322", "markPx": "14.3161", "midPx": "14.314",
    "funding": "0.0000125", "openInterest": "688.11", "oraclePx": "14.32", "premium": "0.00031774",
    "impactPxs": ["14.3047", "14.3444"], "dayBaseVlm": "81806.5"
  }}
}"""


# --- binance -------------------------------------------------------------------------------------------


def test_binance_single_symbol_stream():
    (row,) = parse_message("binance", json.dumps(BINANCE_BTC), RECEIVED, parser("binance"))
    assert len(row) == len(PRINT_COLUMNS)
    assert row[:4] == ("binance", "BTC/USDT:USDT", "BTC", "predicted")
    assert field(row, "funding_time") == ts("2024-05-01 08:00")
    assert field(row, "funding_time") % (8 * H) == 0
    assert field(row, "ts") == 1714548676000 * MS
    assert field(row, "received_at") == RECEIVED
    assert field(row, "rate") == 0.0001 and field(row, "interval_h") == 8.0
    assert (field(row, "mark_price"), field(row, "index_price")) == (60512.1, 60530.48021739)
    assert field(row, "source") == "ws"


def test_binance_documented_example_keeps_the_announced_funding_time():
    """T=06:00 with the 8h default: snapping to the 8h grid would put funding at 00:00, before E."""
    (row,) = parse_message("binance", BINANCE_DOC, RECEIVED, parser("binance"))
    assert field(row, "funding_time") == 1562306400000 * MS > field(row, "ts")
    (hourly,) = parse_message("binance", BINANCE_DOC, RECEIVED, StreamParser("binance", {"BTC/USDT:USDT": 1.0}))
    assert field(hourly, "interval_h") == 1.0 and field(hourly, "funding_time") % H == 0


def test_binance_all_market_array_and_combined_wrapper():
    frame = [BINANCE_BTC, BINANCE_ETH]
    plain = parser("binance").parse(json.dumps(frame), RECEIVED)
    wrapped = parser("binance").parse(json.dumps({"stream": "!markPrice@arr@1s", "data": frame}), RECEIVED)
    single = parser("binance").parse(json.dumps({"stream": "ethusdt@markPrice@1s", "data": BINANCE_ETH}), RECEIVED)
    assert plain == wrapped
    assert [field(r, "symbol") for r in plain] == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert single == plain[1:]
    assert field(plain[1], "rate") == -0.0000231


def test_binance_uses_the_callers_intervals_and_never_guesses_one():
    btc, eth = parser("binance", {"BTC/USDT:USDT": 8.0, "ETH/USDT:USDT": 4.0}).parse(
        json.dumps([BINANCE_BTC, BINANCE_ETH]), RECEIVED
    )
    assert (field(btc, "interval_h"), field(eth, "interval_h")) == (8.0, 4.0)
    with pytest.raises(NoInterval, match="no funding interval known for BTC/USDT:USDT"):
        parser("binance", {}).parse(json.dumps(BINANCE_BTC), RECEIVED)
    only_btc = parser("binance", {"BTC/USDT:USDT": 8.0})
    (kept,) = only_btc.parse(json.dumps([BINANCE_BTC, BINANCE_ETH]), RECEIVED)
    assert field(kept, "symbol") == "BTC/USDT:USDT"
    ((reason, item),) = only_btc.ctx.bad_items
    assert "ETH/USDT:USDT" in reason and item == BINANCE_ETH, "the item without an interval is set aside alone"


def test_binance_whole_market_frame_skips_dated_contracts_and_unconfigured_symbols():
    dated = BINANCE_BTC | {"s": "BTCUSDT_261225", "r": "", "T": 0}
    broken = BINANCE_ETH | {"r": "NaN"}
    sol = BINANCE_ETH | {"s": "SOLUSDT"}
    stream = parser("binance", wanted={"BTC/USDT:USDT", "ETH/USDT:USDT"})
    rows = stream.parse(json.dumps([BINANCE_BTC, dated, sol, broken]), RECEIVED)
    assert [field(r, "symbol") for r in rows] == ["BTC/USDT:USDT"]
    assert stream.ctx.skipped == {"not_a_perp": 1, "unconfigured": 1}
    assert [item for _, item in stream.ctx.bad_items] == [broken], "one bad item is quarantined alone"


def test_binance_subscribe_ack_refusal_and_subscriptions():
    stream = parser("binance")
    assert stream.parse('{"result":null,"id":1}', RECEIVED) == []
    assert stream.control_messages == 1
    assert stream.parse('{"error":{"code":1,"msg":"Too many streams"},"id":2}', RECEIVED) == []
    assert stream.ctx.failed_subscriptions == ["request 2: Too many streams"]
    (frame,) = subscribe_messages("binance", ["BTC/USDT:USDT", "ETH/USDT:USDT"])
    assert json.loads(frame)["params"] == ["btcusdt@markPrice@1s", "ethusdt@markPrice@1s"]
    assert json.loads(subscribe_messages("binance", ["BTC/USDT:USDT"], all_market=True)[0])["params"] == [
        "!markPrice@arr@1s"
    ]


# --- bybit ---------------------------------------------------------------------------------------------


def test_bybit_snapshot_then_deltas_merge():
    stream = StreamParser("bybit")
    (snap,) = stream.parse(BYBIT_SNAPSHOT, RECEIVED)
    assert snap[:4] == ("bybit", "BTC/USDT:USDT", "BTC", "predicted")
    assert field(snap, "funding_time") == ts("2023-01-09 16:00") == 1673280000000 * MS
    assert field(snap, "ts") == 1673272861686 * MS and field(snap, "received_at") == RECEIVED
    assert (field(snap, "rate"), field(snap, "interval_h")) == (-0.000212, 8.0)
    (price_only,) = stream.parse(BYBIT_DELTA_PRICE_ONLY, RECEIVED + 1)
    assert field(price_only, "rate") == -0.000212, "a delta without fundingRate keeps the last one"
    assert field(price_only, "funding_time") == field(snap, "funding_time")
    assert (field(price_only, "mark_price"), field(price_only, "index_price")) == (17220.10, 17229.00)
    (rate,) = stream.parse(BYBIT_DELTA_RATE, RECEIVED + 2)
    assert (field(rate, "rate"), field(rate, "mark_price"), field(rate, "index_price")) == (-0.000198, 17221.0, 17229.0)
    (rolled,) = stream.parse(BYBIT_DELTA_ROLL, RECEIVED + 3)
    assert field(rolled, "funding_time") == ts("2023-01-09 20:00")
    assert (field(rolled, "interval_h"), field(rolled, "rate")) == (4.0, 0.0001)
    book_only = json.dumps(
        {
            "topic": "tickers.BTCUSDT",
            "type": "delta",
            "data": {"symbol": "BTCUSDT", "bid1Size": "2.1"},
            "ts": 1673280000400,
        }
    )
    assert stream.parse(book_only, RECEIVED + 4) == [], "a book-only delta is no new print"
    assert stream.ctx.skipped == {"book_only_delta": 1}


def test_bybit_delta_before_snapshot_and_unknown_interval_are_malformed():
    with pytest.raises(MalformedMessage, match="before its snapshot"):
        StreamParser("bybit").parse(BYBIT_DELTA_RATE, RECEIVED)
    no_interval = json.loads(BYBIT_SNAPSHOT)
    del no_interval["data"]["fundingIntervalHour"]
    with pytest.raises(MalformedMessage, match="no funding interval"):
        StreamParser("bybit").parse(json.dumps(no_interval), RECEIVED)
    (row,) = StreamParser("bybit", {"BTC/USDT:USDT": 8.0}).parse(json.dumps(no_interval), RECEIVED)
    assert field(row, "interval_h") == 8.0


def test_bybit_acks_pongs_and_refused_subscriptions():
    stream = StreamParser("bybit")
    ack = '{"success":true,"ret_msg":"","conn_id":"cejreaspqfh3sjdnldmg-p","req_id":"sub0","op":"subscribe"}'
    pong = '{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","req_id":"","op":"ping"}'
    assert stream.parse(ack, RECEIVED) == [] and stream.parse(pong, RECEIVED) == []
    assert stream.control_messages == 2
    refused = json.dumps(
        {
            "success": False,
            "ret_msg": "Invalid symbol :[tickers.XYZUSDT]",
            "conn_id": "c",
            "req_id": "sub1",
            "op": "subscribe",
        }
    )
    assert stream.parse(refused, RECEIVED) == []
    assert stream.ctx.failed_subscriptions == ["sub1: Invalid symbol :[tickers.XYZUSDT]"], "reported, not silent"
    frames = subscribe_messages("bybit", [f"B{i}/USDT:USDT" for i in range(23)])
    assert [len(json.loads(f)["args"]) for f in frames] == [10, 10, 3], "bybit takes at most 10 args per request"


# --- okx -----------------------------------------------------------------------------------------------


def test_okx_funding_rate_push():
    (row,) = parse_message("okx", OKX_PUSH, RECEIVED, parser("okx"))
    assert row[:4] == ("okx", "BTC/USDT:USDT", "BTC", "predicted")
    assert field(row, "funding_time") == ts("2023-11-23 08:00") and field(row, "funding_time") % (8 * H) == 0
    assert field(row, "ts") == 1700724675402 * MS and field(row, "received_at") == RECEIVED
    assert (field(row, "rate"), field(row, "interval_h")) == (0.0001875391284828, 8.0)
    assert math.isnan(field(row, "mark_price"))


def test_okx_interval_is_the_settled_windows_never_the_next_ones():
    """Around an 8h → 4h change, nextFundingTime - fundingTime is the next window's 4h; the running window is 8h."""
    msg = json.loads(OKX_PUSH)
    msg["data"][0]["nextFundingTime"] = str(1700726400000 + 4 * 3_600_000)
    stream = parser("okx")
    (row,) = stream.parse(json.dumps(msg), RECEIVED)
    assert field(row, "interval_h") == 8.0, "the running window keeps the interval learned over REST"
    rolled = json.loads(json.dumps(msg))
    rolled["data"][0] |= {"fundingTime": str(1700726400000 + 4 * 3_600_000), "ts": "1700726401000"}
    (after,) = stream.parse(json.dumps(rolled), RECEIVED + 1)
    assert field(after, "interval_h") == 4.0, "the roll from 08:00 to 12:00 shows the 4h window"
    with pytest.raises(NoInterval):
        parser("okx", {}).parse(OKX_PUSH, RECEIVED)


def test_okx_acks_pongs_and_errors():
    stream = StreamParser("okx")
    assert stream.parse("pong", RECEIVED) == []
    assert stream.parse(b"pong", RECEIVED) == []
    ack = '{"event":"subscribe","arg":{"channel":"funding-rate","instId":"BTC-USDT-SWAP"},"connId":"a4d3ae55"}'
    assert stream.parse(ack, RECEIVED) == [] and stream.control_messages == 3
    with pytest.raises(UnknownMessage, match="60012"):
        stream.parse('{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}', RECEIVED)
    assert stream.ctx.failed_subscriptions == ["60012: Invalid request"]


# --- hyperliquid ---------------------------------------------------------------------------------------


def test_hyperliquid_active_asset_ctx():
    (row,) = parse_message("hyperliquid", HYPERLIQUID_CTX, RECEIVED)
    assert row[:4] == ("hyperliquid", "BTC/USDC:USDC", "BTC", "predicted")
    assert field(row, "funding_time") == ts("2024-05-01 08:00"), "hourly: the next hour after receipt"
    assert field(row, "ts") == field(row, "received_at") == RECEIVED
    assert (field(row, "rate"), field(row, "interval_h")) == (0.0000125, 1.0)
    assert (field(row, "mark_price"), field(row, "index_price")) == (14.3161, 14.32)
    (on_the_hour,) = parse_message("hyperliquid", HYPERLIQUID_CTX, "2024-05-01 08:00")
    assert field(on_the_hour, "funding_time") == ts("2024-05-01 09:00")


def test_hyperliquid_acks_and_pongs():
    stream = StreamParser("hyperliquid")
    response = (
        '{"channel":"subscriptionResponse","data":{"method":"subscribe",'
        '"subscription":{"type":"activeAssetCtx","coin":"BTC"}}}'
    )
    assert stream.parse(response, RECEIVED) == [] and stream.parse('{"channel":"pong"}', RECEIVED) == []
    assert stream.control_messages == 2
    with pytest.raises(UnknownMessage):
        stream.parse('{"channel":"error","data":"Invalid subscription"}', RECEIVED)


# --- malformed and unknown -----------------------------------------------------------------------------


def _with(doc: str, path: tuple, value) -> str:
    msg = json.loads(doc)
    target = msg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(msg)


BINANCE_ONE = json.dumps(BINANCE_BTC)
MALFORMED = [
    ("binance", '{"e":"markPriceUpdate","E":1714548676000,"s":"BTCUSDT","r":"0.0001","T":171455'),
    ("binance", b"\xff\xfe not utf-8"),
    ("binance", _with(BINANCE_ONE, ("r",), "NaN")),
    ("binance", _with(BINANCE_ONE, ("r",), "inf")),
    ("binance", BINANCE_ONE.replace('"0.00010000"', "Infinity")),
    ("binance", _with(BINANCE_ONE, ("r",), True)),
    ("binance", _with(BINANCE_ONE, ("r",), {"value": 1})),
    ("binance", _with(BINANCE_ONE, ("r",), "-1.5")),
    ("binance", _with(BINANCE_ONE, ("E",), "yesterday")),
    ("binance", _with(BINANCE_ONE, ("E",), 1e300)),
    ("binance", BINANCE_ONE.replace("1714548676000", "Infinity")),
    ("binance", _with(BINANCE_ONE, ("s",), 42)),
    ("binance", _with(BINANCE_ONE, ("p",), False)),
    ("bybit", _with(BYBIT_SNAPSHOT, ("data", "fundingRate"), "")),
    ("bybit", _with(BYBIT_SNAPSHOT, ("data", "fundingIntervalHour"), "inf")),
    ("bybit", _with(BYBIT_SNAPSHOT, ("data", "nextFundingTime"), -5)),
    ("okx", _with(OKX_PUSH, ("data", 0, "fundingRate"), "nan")),
    ("okx", _with(OKX_PUSH, ("data", 0, "fundingTime"), "soon")),
    ("okx", _with(OKX_PUSH, ("data",), "not a list")),
    ("hyperliquid", _with(HYPERLIQUID_CTX, ("data", "coin"), 7)),
    ("hyperliquid", _with(HYPERLIQUID_CTX, ("data", "ctx", "funding"), None)),
    ("hyperliquid", "[" * 100_000),
]


@pytest.mark.parametrize(("venue", "raw"), MALFORMED)
def test_malformed_frames_raise_malformed(venue, raw):
    with pytest.raises(MalformedMessage):
        parse_message(venue, raw, RECEIVED, parser(venue))


UNKNOWN = [
    ("binance", '{"e":"aggTrade","E":1714548676000,"s":"BTCUSDT"}'),
    ("binance", '{"error":{"code":2,"msg":"Invalid request"}}'),
    ("binance", '"text"'),
    ("bybit", '{"topic":"orderbook.50.BTCUSDT","type":"snapshot","data":{},"ts":1}'),
    ("bybit", '{"success":false,"ret_msg":"error:handler not found","conn_id":"x","op":""}'),
    ("okx", '{"arg":{"channel":"tickers","instId":"BTC-USDT-SWAP"},"data":[]}'),
    ("hyperliquid", '{"channel":"trades","data":[]}'),
    ("hyperliquid", "[]"),
]


@pytest.mark.parametrize(("venue", "raw"), UNKNOWN)
def test_unknown_shapes_raise_unknown(venue, raw):
    with pytest.raises(UnknownMessage):
        parse_message(venue, raw, RECEIVED, parser(venue))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


def _parse_or_reject(venue: str, raw) -> list[tuple]:
    try:
        rows = parser(venue).parse(raw, RECEIVED)
    except MalformedMessage:
        return []
    for row in rows:
        assert len(row) == len(PRINT_COLUMNS)
        assert math.isfinite(field(row, "rate")) and field(row, "rate") > -1
        assert 0 < field(row, "interval_h") <= 24
        assert all(isinstance(field(row, c), int) and 0 < field(row, c) < 2**63 for c in ("funding_time", "ts"))
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(venue=st.sampled_from(WS_VENUES), raw=st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_raise_only_parser_errors(venue, raw):
    _parse_or_reject(venue, raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(venue=st.sampled_from(WS_VENUES), doc=JSON)
def test_arbitrary_json_raises_only_parser_errors(venue, doc):
    _parse_or_reject(venue, json.dumps(doc))


DOCS = {
    "binance": [BINANCE_ONE, json.dumps({"stream": "!markPrice@arr@1s", "data": [BINANCE_BTC]})],
    "bybit": [BYBIT_SNAPSHOT],
    "okx": [OKX_PUSH],
    "hyperliquid": [HYPERLIQUID_CTX],
}


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaf_paths(value, (*prefix, i))
    yield prefix


@st.composite
def mutated_documents(draw):
    """A documented message with one field replaced by arbitrary JSON: close to valid, so deep paths are reached."""
    venue = draw(st.sampled_from(WS_VENUES))
    doc = json.loads(draw(st.sampled_from(DOCS[venue])))
    paths = [p for p in _leaf_paths(doc) if p]
    path = draw(st.sampled_from(paths))
    value = draw(JSON)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return venue, json.dumps(doc)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_documents())
def test_documented_messages_with_any_field_replaced_raise_only_parser_errors(case):
    venue, raw = case
    _parse_or_reject(venue, raw)


def test_a_300_symbol_whole_market_frame_gives_300_prints_in_order():
    """The shape the collector bench pushes: every item parsed, none lost or reordered (speed: bench/collector.py)."""
    items = [
        BINANCE_BTC | {"s": f"C{i:03d}USDT", "r": f"{(i - 150) * 1e-6:.8f}", "p": f"{100 + i}.12345678"}
        for i in range(300)
    ]
    stream = parser("binance", {f"C{i:03d}/USDT:USDT": 8.0 for i in range(300)})
    rows = stream.parse(json.dumps(items), RECEIVED)
    assert [r.symbol for r in rows] == [f"C{i:03d}/USDT:USDT" for i in range(300)]
    assert [r.rate for r in rows] == [float(f"{(i - 150) * 1e-6:.8f}") for i in range(300)]
