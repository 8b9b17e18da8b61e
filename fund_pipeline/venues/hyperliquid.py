"""Hyperliquid perpetuals: symbols, REST mapping onto ccxt, the `activeAssetCtx` stream, its wire format.

Hourly funding (1/8 of the 8h formula paid every hour, capped at 4 %/h). Every request is a POST
to `/info`, weighed against 1,200 weight per minute per IP (funding history and candles weigh
20); `candleSnapshot` serves only the latest 5,000 candles. The stream's `activeAssetCtx` carries
no time: `ts` is the venue's clock at receipt (the collector's, else the receive time) and the
funding time the next hour on it. The client pings
`{"method":"ping"}` (the server closes a connection silent for 60 s); at most 1,000 subscriptions.
"""

from __future__ import annotations

import json
from typing import Any

from fund_pipeline.domain.predicted import FundingFormula
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.domain.time import MS_PER_HOUR, NS_PER_HOUR, floor_hour_ns
from fund_pipeline.venues.adapter import (
    EmulatedSession,
    HistoryDepth,
    ParseContext,
    PremiumHistory,
    PremiumSample,
    RateLimit,
    RestSpec,
    StreamSpec,
    VenueAdapter,
    VenueFacts,
)
from fund_pipeline.venues.wire import (
    MalformedMessage,
    UnknownMessage,
    emit_number,
    funding_rate,
    optional_price,
    premium_list,
    premium_sample,
    unified,
    wanted,
)


class HyperliquidAdapter(VenueAdapter):
    # Funding (docs, "Trading > Funding"): the premium sampled every 5 s and averaged over the hour, the 8h
    # formula F = P + clamp(I - P, ±0.05 %) with 0.01 %/8h interest paid hourly at 1/8 (premium, interest and
    # clamp all scaled), capped at 4 % an hour.
    facts = VenueFacts(
        "hyperliquid",
        default_interval_h=1.0,
        quote="USDC",
        funding=FundingFormula(0.0001, 0.0005, cap=0.04, clamp_scaled=True, sample_step_s=5.0),
    )
    rest = RestSpec(
        "hyperliquid",
        {"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}},
        funding_page=500,
        ohlcv_page=5000,
        rate_limits=(RateLimit("info weight", 1200, 60.0, weight=20.0),),
        history=(HistoryDepth("fetch_ohlcv", "/info candleSnapshot", rows=5000, step_h=1.0),),
        ban_status=418,
        # `fundingHistory` (500 hourly records a request): each record's `premium` is the hour's average premium.
        premium=PremiumHistory("publicPostInfo", "/info fundingHistory", 500, MS_PER_HOUR),
    )
    stream = StreamSpec(
        url="wss://api.hyperliquid.xyz",
        route="/ws",
        app_ping=('{"method":"ping"}', 50.0),
        push_every_s=(0.5, 3.0),
        streams_per_connection=1000,
        stamps_messages=False,
    )

    def native_symbol(self, symbol: str) -> str:
        return symbol.partition("/")[0]

    def unified_symbol(self, native: str) -> tuple[str, str] | None:
        return f"{native}/USDC:USDC", native

    def rest_interval_h(self, market: dict[str, Any], call: Any) -> float:
        return self.facts.default_interval_h

    def premium_params(self, symbol: str, lo_ms: int, hi_ms: int, limit: int) -> dict[str, Any]:
        """Funding records of the hours ending in (lo, hi + 1 h): a record is stamped at (just after) its hour's end."""
        return {
            "type": "fundingHistory",
            "coin": self.native_symbol(symbol),
            "startTime": lo_ms + 1,
            "endTime": hi_ms + MS_PER_HOUR,
        }

    def premium_rows(self, response: Any) -> list[PremiumSample]:
        """{coin, fundingRate, premium, time}: the hour's average premium, known at the hour's last millisecond
        (`time` is the settlement, a few ms past the hour)."""
        what = "hyperliquid fundingHistory"
        rows = premium_list(response, what)
        bad = next((row for row in rows if not isinstance(row, dict)), None)
        if bad is not None:
            raise MalformedMessage(f"{what}: row {bad!r} is not an object")
        settled = [premium_sample(row.get("time"), row.get("premium"), what) for row in rows]
        return [PremiumSample(s.known_ms // MS_PER_HOUR * MS_PER_HOUR - 1, s.premium) for s in settled]

    def stream_intervals(self, call: Any, symbols: list[str]) -> dict[str, float]:
        return {s: self.facts.default_interval_h for s in symbols}

    # ------------------------------------------------------------ WebSocket: client

    def subscribe_messages(self, symbols: list[str], all_market: bool = False) -> list[str]:
        return [
            json.dumps(
                {"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": self.native_symbol(s)}}
            )
            for s in symbols
        ]

    def parse(self, msg: Any, received_at_ns: int, ctx: ParseContext) -> list[FundingPrint]:
        if not isinstance(msg, dict):
            raise UnknownMessage(f"hyperliquid: unexpected {type(msg).__name__}")
        channel = msg.get("channel")
        if channel in ("subscriptionResponse", "pong"):
            return ctx.control()
        if channel == "error":
            ctx.failed_subscriptions.append(str(msg.get("data"))[:200])
            raise UnknownMessage(f"hyperliquid: error {str(msg.get('data'))[:200]}")
        if channel != "activeAssetCtx":
            raise UnknownMessage(f"hyperliquid: unknown channel {channel!r}")
        data = msg["data"]
        ctx_fields = data["ctx"]
        found = unified(self, ctx, data["coin"])
        if not wanted(ctx, found):
            return []
        assert found is not None
        symbol, base = found
        now = received_at_ns if ctx.now_ns is None else ctx.now_ns
        funding = floor_hour_ns(now) + NS_PER_HOUR
        return [FundingPrint(
            "hyperliquid", symbol, base, "predicted", funding, now, received_at_ns,
            funding_rate(ctx_fields["funding"]), self.facts.default_interval_h,
            optional_price(ctx_fields.get("markPx")), optional_price(ctx_fields.get("oraclePx")), "ws",
        )]  # fmt: skip

    # ------------------------------------------------------------ WebSocket: the emulator's side

    def encode_prints(self, prints: list[FundingPrint], session: EmulatedSession) -> list[str]:
        frames = []
        for p in prints:
            if p.symbol not in session.symbols:
                continue
            mark = emit_number(p.mark_price)
            ctx = {
                "dayNtlVlm": "0.0", "prevDayPx": mark, "markPx": mark, "midPx": mark, "funding": emit_number(p.rate),
                "openInterest": "0.0", "oraclePx": emit_number(p.index_price), "premium": "0.0",
                "impactPxs": [mark, mark], "dayBaseVlm": "0.0",
            }  # fmt: skip
            frames.append(
                json.dumps({"channel": "activeAssetCtx", "data": {"coin": self.native_symbol(p.symbol), "ctx": ctx}})
            )
        return frames

    def serve_request(self, text: str, session: EmulatedSession) -> list[str]:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            return [json.dumps({"channel": "error", "data": f"Invalid request {text[:64]}"})]
        method = msg.get("method")
        if method == "ping":
            return [json.dumps({"channel": "pong"})]
        subscription = msg.get("subscription") or {}
        if method == "subscribe" and subscription.get("type") == "activeAssetCtx":
            symbol = session.known(str(subscription.get("coin", "")))
            if symbol is None or symbol in session.fail_subscriptions:
                return [json.dumps({"channel": "error", "data": f"Invalid subscription {text}"})]
            session.symbols[symbol] = subscription["coin"]
            return [json.dumps({"channel": "subscriptionResponse", "data": msg})]
        return [json.dumps({"channel": "error", "data": f"Invalid request {text}"})]


ADAPTER = HyperliquidAdapter()
