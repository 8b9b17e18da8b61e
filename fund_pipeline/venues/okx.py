"""OKX v5 swaps: symbols, REST mapping onto ccxt, the `funding-rate` channel, its wire format.

Intervals come from settled windows, never from `nextFundingTime - fundingTime` (the length of
the window after the running one: around an interval change it would tag the last old window
with the new interval). Over REST the running window's interval is its settlement (`fundingTime`
of public/funding-rate) minus the last settled print's; on the stream, a roll of `fundingTime`
from F to F' gives the window ending at F' the interval F' - F, and before the first roll the
caller's REST interval stands. `funding-rate` pushes every 30-90 s, so a silence limit tuned for
per-second streams would reconnect it forever. Funding history reaches back 3 months (at most
400 rows a request).

Open interest ("Get contract open interest history", `GET /api/v5/rubik/stat/contracts/open-interest-history`):
per instrument (instId, period 5m..4H, `begin` newer than / `end` earlier than a ts, at most 100 rows a request,
newest first), rows [ts, oi (contracts), oiCcy (coins), oiUsd]; only the latest 1,440 rows of a period; 10
requests per 2 s per IP and instrument. ccxt's unified fetchOpenInterestHistory reads `open-interest-volume`
instead, which is per currency (every swap and future of the coin summed: BTC-USDT-SWAP and BTC-USD-SWAP would
both carry the total), so the per-instrument endpoint is read through ccxt's implicit method.

Liquidations ("Liquidation orders channel", `liquidation-orders` with instType SWAP, whole-market): each
data item is an instrument with `details` [{bkPx (bankruptcy price), sz (contracts), posSide, side, ts}];
`posSide` is the liquidated position (long/short; "net" in one-way mode, where the order `side` tells:
sell closes a long). A linear swap's contract is `ctVal` base coins (0.01 BTC for BTC-USDT-SWAP), learned
from the instruments; a coin-margined one's `ctVal` USD. REST history: `GET /api/v5/public/liquidation-orders`
(instType=SWAP, instFamily, state=filled, at most 100 rows a page, `after` pages back in time).
"""

from __future__ import annotations

import json
import math
from typing import Any

from fund_pipeline.domain.liquidations import LONG, SHORT, Liquidation, sized
from fund_pipeline.domain.predicted import FORMULA_BASIS_H, AveragingWindow, FormulaKind, FundingFormula
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.domain.time import MS_PER_HOUR, NS_PER_HOUR, NS_PER_MS
from fund_pipeline.venues.adapter import (
    MINUTE_MS,
    EmulatedSession,
    HistoryDepth,
    InstrumentOpenInterest,
    InversePerp,
    OpenInterestSample,
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
    NoContractSize,
    UnknownMessage,
    collect_items,
    emit_number,
    funding_rate,
    interval_hours,
    known_interval,
    liquidated_side,
    number,
    parse_items,
    positive,
    premium_list,
    premium_sample,
    time_ns,
    unified,
    wanted,
)

OPEN_INTEREST_PATH = "/api/v5/rubik/stat/contracts/open-interest-history"
OPEN_INTEREST_METHOD = "publicGetRubikStatContractsOpenInterestHistory"
OPEN_INTEREST_PAGE = 100
OPEN_INTEREST_ROWS_KEPT = 1440  # "can retrieve the latest 1,440 data entries" (of the period asked)
# The period asked: hourly, the bars' grid.
OPEN_INTEREST_PERIOD = "1H"
CURRENCY_OI_PATH = "/api/v5/rubik/stat/contracts/open-interest-volume"

LIQUIDATION_CHANNEL = "liquidation-orders"
LIQUIDATION_HISTORY_PATH = "/api/v5/public/liquidation-orders"
LIQUIDATION_PAGE = 100
# How far back the REST history answers: OKX's docs state no depth; third-party clients observe about a week.
LIQUIDATION_HISTORY_DAYS = 7
# posSide in long/short mode; in one-way ("net") mode the order's side: a sell closes a long.
POSITION_SIDES = {"long": LONG, "short": SHORT}
ORDER_SIDES = {"sell": LONG, "buy": SHORT}
# ctVal of BTC-USDT-SWAP (base coins per contract), the emulator's for every linear swap.
LINEAR_CONTRACT_COINS = 0.01

# Funding (help centre, "Introduction to perpetual swap funding fee"): F = Clamp[MA(P - I), floor, cap] with
# interest I = 0 and the premium of every minute averaged uniformly; caps by currency (±0.375 % BTC, ±0.75 % the
# majors below, ±1.5 % the others). From 2024-03-05 08:00 UTC ("OKX to optimize funding rate calculation") the
# average runs over the last N hours instead of the window so far (the same value at the window's last minute).
OTHER_CAP = 0.015
CAP_BY_BASE = {"BTC": 0.00375} | dict.fromkeys(
    ("ADA", "AVAX", "BCH", "DOT", "EOS", "ETC", "ETH", "FIL", "LINK", "LTC", "TRX", "XRP"), 0.0075
)
MOVING_AVERAGE_FROM_MS = 1_709_625_600_000  # 2024-03-05 08:00 UTC
# "OKX to change the funding rate formula for perpetual futures" (okx.com/help/okx-to-change-the-funding-rate-
# formula-for-perpetual-futures): live in 3 batches, 2025-04-10, 04-17 and 04-24, each at 00:01 UTC (the first
# window settled by it ends 08:00 on 8 h, 04:00 on 4 h, 02:00 on 2 h). F = Clamp[P + Clamp(I - P, 0.05 %, -0.05 %),
# cap, floor], I = 0.03 % / (24 / N) (0.01 % per 8 h), P a "weighted moving average" of the premium. The page names
# no instrument per batch: every swap takes the first batch's date.
INTEREST_CLAMP_FROM_MS = 1_744_243_260_000  # 2025-04-10 00:01 UTC
INTEREST_RATE_8H = 0.0001
CLAMP_8H = 0.0005
# "Some perpetual futures will have no interest rate. This only applies to USDCUSDT perpetual futures at the moment."
NO_INTEREST_SYMBOLS = frozenset({"USDC/USDT:USDT"})


def documented_formula(cap: float, window: AveragingWindow = AveragingWindow.MOVING) -> FundingFormula:
    """OKX's formula before 2025-04-10 with one cap (and floor -cap): premium only, no interval scaling, uniform
    minute samples."""
    return FundingFormula(0.0, 0.0, cap=cap, kind=FormulaKind.PREMIUM_ONLY, window=window, premium_scaled=False)


def interest_clamp_formula(cap: float, interest_rate_8h: float = INTEREST_RATE_8H) -> FundingFormula:
    """OKX's formula from 2025-04-10: P + clamp(I - P, ±0.05 %), only the interest scaled to the interval (the
    clamp stays ±0.05 % per interval, P is the interval's own average), then the currency's cap and floor.

    P's weights: the announcement says "weighted moving average" and points to a product page that could not be
    read; nothing says the window stopped being the moving N hours, so P stays the uniform mean of the last N
    hours' minute samples (at the settlement the same as the window's own mean)."""
    return FundingFormula(interest_rate_8h, CLAMP_8H, cap=cap, window=AveragingWindow.MOVING, premium_scaled=False)


class OkxAdapter(VenueAdapter):
    facts = VenueFacts("okx", funding=interest_clamp_formula(OTHER_CAP))
    rest = RestSpec(
        "okx",
        {"defaultType": "swap", "fetchMarkets": {"types": ["spot", "swap"]}, "fetchCurrencies": False},
        funding_page=400,
        ohlcv_page=100,
        oi_page=1440,
        has_spot=True,
        has_mark_index=True,
        funding_until="after",
        rate_limits=(
            RateLimit(
                "funding-rate-history",
                10,
                2.0,
                methods=("fetch_funding_rate_history",),
                paths=("/api/v5/public/funding-rate-history",),
            ),
            RateLimit("funding-rate", 20, 2.0, methods=("fetch_funding_rate",), paths=("/api/v5/public/funding-rate",)),
            RateLimit("candles", 20, 2.0, methods=("fetch_ohlcv",), paths=("/api/v5/market/",)),
            RateLimit(
                "open-interest-volume", 5, 2.0, methods=("fetch_open_interest_history",), paths=(CURRENCY_OI_PATH,)
            ),
            RateLimit("open-interest-history", 10, 2.0, methods=(OPEN_INTEREST_METHOD,), paths=(OPEN_INTEREST_PATH,)),
            RateLimit(
                "premium-history",
                20,
                2.0,
                methods=("publicGetPublicPremiumHistory",),
                paths=("/api/v5/public/premium-history",),
            ),
        ),
        history=(
            HistoryDepth("fetch_funding_rate_history", "/api/v5/public/funding-rate-history", days=92),
            HistoryDepth("fetch_open_interest_history", CURRENCY_OI_PATH, days=30),
            HistoryDepth(OPEN_INTEREST_METHOD, OPEN_INTEREST_PATH, rows=OPEN_INTEREST_ROWS_KEPT, step_h=1.0),
        ),
        instrument_oi=InstrumentOpenInterest(OPEN_INTEREST_METHOD, OPEN_INTEREST_PATH, OPEN_INTEREST_PAGE, MS_PER_HOUR),
        # "Get premium history": 100 rows a request, one a minute, newest first.
        premium=PremiumHistory(
            "publicGetPublicPremiumHistory",
            "/api/v5/public/premium-history",
            100,
            MINUTE_MS,
            inverse_method="publicGetPublicPremiumHistory",
        ),
    )

    # Coin-margined swaps (settleCcy the coin), `ctVal` USD per contract.
    inverse_perps = (InversePerp("BTC", 100.0), InversePerp("ETH", 10.0))
    liquidation_channel = LIQUIDATION_CHANNEL
    liquidation_history_path = LIQUIDATION_HISTORY_PATH
    stream = StreamSpec(
        url="wss://ws.okx.com:8443",
        route="/ws/v5/public",
        app_ping=("ping", 25.0),
        push_every_s=(30.0, 90.0),
    )

    def funding_formula(self, symbol: str, at_ms: int | None = None) -> FundingFormula:
        """The currency's cap on the formula in force at the instant `at_ms` (None: now; a window's settlement
        time picks the formula it settles by): the window so far before 2024-03-05 08:00, the moving N hours
        after, with the interest and the ±0.05 % clamp from 2025-04-10 00:01."""
        cap = CAP_BY_BASE.get(symbol.partition("/")[0], OTHER_CAP)
        if at_ms is None or at_ms >= INTEREST_CLAMP_FROM_MS:
            return interest_clamp_formula(cap, 0.0 if symbol in NO_INTEREST_SYMBOLS else INTEREST_RATE_8H)
        window = AveragingWindow.CURRENT if at_ms < MOVING_AVERAGE_FROM_MS else AveragingWindow.MOVING
        return documented_formula(cap, window)

    def native_symbol(self, symbol: str) -> str:
        base, _, rest = symbol.partition("/")
        return f"{base}-{rest.partition(':')[0]}-SWAP"

    def unified_symbol(self, native: str) -> tuple[str, str] | None:
        parts = native.split("-")
        if len(parts) != 3 or parts[2] != "SWAP":
            if len(parts) == 3 and parts[2].isdigit():  # a dated future, BTC-USDT-261225
                return None
            raise MalformedMessage(f"okx: instrument {native!r} is not a swap id")
        base, quote, _ = parts
        settle = base if quote == "USD" else quote  # BTC-USD-SWAP is margined and settled in BTC
        return f"{base}/{quote}:{settle}", base

    def rest_interval_h(self, market: dict[str, Any], call: Any) -> float:
        """The running window's settlement minus the last settled one."""
        running = call("fetch_funding_rate", market["symbol"])
        settles_ms = int((running.get("info") or {})["fundingTime"])
        last = call("fetch_funding_rate_history", market["symbol"], None, 1)
        if not last:
            raise MalformedMessage(f"okx: {market['symbol']} has no settled funding yet; its interval is unknown")
        return (settles_ms - int(last[-1]["timestamp"])) / 3_600_000

    def open_interest_params(self, symbol: str, lo_ms: int, hi_ms: int, limit: int) -> dict[str, Any]:
        """Hourly rows timed in [lo, hi): `begin` lo - 1 and `end` hi, right whether OKX reads them as exclusive
        ("newer than", "earlier than") or inclusive (the caller keeps [lo, hi))."""
        return {
            "instId": self.native_symbol(symbol),
            "period": OPEN_INTEREST_PERIOD,
            "begin": str(lo_ms - 1),
            "end": str(hi_ms),
            "limit": str(limit),
        }

    def open_interest_rows(self, response: Any) -> list[OpenInterestSample]:
        """`data` of [ts, oi, oiCcy, oiUsd] string arrays, newest first."""
        what = "okx open-interest-history"
        if not isinstance(response, dict) or response.get("code") != "0":
            raise MalformedMessage(f"{what}: unexpected answer {str(response)[:200]}")
        rows = premium_list(response.get("data"), what)
        out = []
        for row in rows:
            if not (isinstance(row, list) and len(row) >= 4):
                raise MalformedMessage(f"{what}: row {row!r} is not [ts, oi, oiCcy, oiUsd]")
            try:
                ts_ms = time_ns(row[0]) // NS_PER_MS
                contracts, coins, usd = (number(v) for v in row[1:4])
            except (TypeError, ValueError) as bad:
                raise MalformedMessage(f"{what}: unusable row {row!r} ({bad})") from bad
            if not all(math.isfinite(v) and v >= 0 for v in (contracts, coins, usd)):
                raise MalformedMessage(f"{what}: row {row!r} has a negative or non-finite open interest")
            out.append(OpenInterestSample(ts_ms, contracts, coins, usd))
        return out

    def premium_params(self, symbol: str, lo_ms: int, hi_ms: int, limit: int) -> dict[str, Any]:
        """Rows generated in [lo, hi): `before` (newer than) lo - 1, `after` (older than) hi, both exclusive."""
        return {
            "instId": self.native_symbol(symbol),
            "before": str(lo_ms - 1),
            "after": str(hi_ms),
            "limit": str(limit),
        }

    def premium_rows(self, response: Any) -> list[PremiumSample]:
        """`data` of {instId, premium, ts}: the premium, known at `ts` (its data generation time)."""
        what = "okx premium-history"
        rows = premium_list(response.get("data") if isinstance(response, dict) else None, what)
        bad = next((row for row in rows if not isinstance(row, dict)), None)
        if bad is not None:
            raise MalformedMessage(f"{what}: row {bad!r} is not an object")
        return [premium_sample(row.get("ts"), row.get("premium"), what) for row in rows]

    def stream_intervals(self, call: Any, symbols: list[str]) -> dict[str, float]:
        return {s: self.rest_interval_h({"symbol": s}, call) for s in symbols}

    # ------------------------------------------------------------ WebSocket: client

    def subscribe_messages(self, symbols: list[str], all_market: bool = False) -> list[str]:
        args = [{"channel": "funding-rate", "instId": self.native_symbol(s)} for s in symbols]
        return [json.dumps({"op": "subscribe", "args": args})]

    def parse(self, msg: Any, received_at_ns: int, ctx: ParseContext) -> list[FundingPrint]:
        if not isinstance(msg, dict):
            raise UnknownMessage(f"okx: unexpected {type(msg).__name__}")
        if "event" in msg:
            if msg["event"] == "error":
                ctx.failed_subscriptions.append(f"{msg.get('code')}: {msg.get('msg')}")
                raise UnknownMessage(f"okx: error event {msg.get('code')} {msg.get('msg')}")
            return ctx.control()
        arg = msg.get("arg") or {}
        if arg.get("channel") == LIQUIDATION_CHANNEL and isinstance(msg.get("data"), list):
            ctx.liquidations.extend(collect_items(msg["data"], ctx, self._liquidations, received_at_ns))
            return []
        if arg.get("channel") != "funding-rate" or "data" not in msg:
            raise UnknownMessage(f"okx: unknown message keys {sorted(msg)[:8]}")
        if not isinstance(msg["data"], list):
            raise MalformedMessage(f"okx: data is {type(msg['data']).__name__}, not a list")
        return parse_items(msg["data"], ctx, self._print, received_at_ns)

    def _print(self, item: Any, received_at_ns: int, ctx: ParseContext) -> FundingPrint | None:
        found = unified(self, ctx, item["instId"])
        if not wanted(ctx, found):
            return None
        assert found is not None
        symbol, base = found
        funding = time_ns(item["fundingTime"])
        seen = ctx.state.setdefault(symbol, {})
        previous = seen.get("funding_time")
        if previous is not None and funding > previous:
            ctx.intervals[symbol] = interval_hours((funding - previous) / NS_PER_HOUR, f"okx {symbol}")
        if previous is None or funding > previous:
            seen["funding_time"] = funding
        return FundingPrint(
            "okx", symbol, base, "predicted", funding, time_ns(item["ts"]), received_at_ns,
            funding_rate(item["fundingRate"]), interval_hours(known_interval(ctx, symbol), f"okx {symbol}"),
            float("nan"), float("nan"), "ws",
        )  # fmt: skip

    # ------------------------------------------------------------ WebSocket: the emulator's side

    def encode_prints(self, prints: list[FundingPrint], session: EmulatedSession) -> list[str]:
        frames = []
        for p in prints:
            if p.symbol not in session.symbols:
                continue
            native = self.native_symbol(p.symbol)
            funding_ms = p.funding_time // NS_PER_MS
            formula = self.funding_formula(p.symbol)
            cap, interest = formula.cap, formula.interest_rate_8h * p.interval_h / FORMULA_BASIS_H
            item = {
                "formulaType": "withRate", "fundingRate": emit_number(p.rate), "fundingTime": str(funding_ms),
                "impactValue": "", "instId": native, "instType": "SWAP", "interestRate": emit_number(interest),
                "maxFundingRate": emit_number(cap), "method": "current_period",
                "minFundingRate": emit_number(formula.lower),
                "nextFundingRate": "", "premium": "",
                "nextFundingTime": str(int(funding_ms + p.interval_h * 3_600_000)), "settState": "settled",
                "settFundingRate": "", "ts": str(p.ts // NS_PER_MS),
            }  # fmt: skip
            frames.append(json.dumps({"arg": {"channel": "funding-rate", "instId": native}, "data": [item]}))
        return frames

    def serve_request(self, text: str, session: EmulatedSession) -> list[str]:
        if text == "ping":
            return ["pong"]
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or msg.get("op") != "subscribe":
            op = msg.get("op") if isinstance(msg, dict) else None
            return [json.dumps({"event": "error", "code": "60012", "msg": f"Illegal request: {op!r}", "connId": "emu"})]
        out = []
        for arg in msg.get("args", []):
            if arg.get("channel") == LIQUIDATION_CHANNEL and arg.get("instType") == "SWAP":
                session.liquidations_all = True
                out.append({"event": "subscribe", "arg": arg, "connId": "emu"})
                continue
            symbol = session.known(arg.get("instId", "")) if arg.get("channel") == "funding-rate" else None
            if symbol is None or symbol in session.fail_subscriptions:
                out.append({"event": "error", "code": "60018", "msg": f"Wrong URL or channel:{arg}", "connId": "emu"})
            else:
                session.symbols[symbol] = arg["instId"]
                out.append({"event": "subscribe", "arg": arg, "connId": "emu"})
        return [json.dumps(frame) for frame in out]

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any] | None:
        return {"code": code or ("50011" if status == 429 else "51001"), "msg": message, "data": []}

    # ------------------------------------------------------------ liquidations

    def liquidation_subscribe_messages(self, symbols: list[str]) -> list[str]:
        """The whole-market channel for swaps: the parser keeps the connection's symbols (`ParseContext.wanted`)."""
        return [json.dumps({"op": "subscribe", "args": [{"channel": LIQUIDATION_CHANNEL, "instType": "SWAP"}]})]

    def contract_size(self, symbol: str, ctx: ParseContext) -> float:
        """USD per contract of a coin-margined swap (its listing), base coins of a linear one (learned `ctVal`)."""
        inverse = self.inverse_perp(symbol)
        if inverse is not None:
            return inverse.contract_usd
        size = ctx.contract_sizes.get(symbol)
        if size is None:
            raise NoContractSize(f"okx: contract size (ctVal) of {symbol} not known; its liquidations count contracts")
        return size

    def _liquidations(self, item: Any, received_at_ns: int, ctx: ParseContext, source: str = "ws") -> list[Liquidation]:
        """One instrument's liquidation details (the channel's and the REST history's items are alike)."""
        found = unified(self, ctx, item["instId"])
        if not wanted(ctx, found):
            return []
        assert found is not None
        symbol, base = found
        what = f"okx liquidation {symbol}"
        size_of = self.contract_size(symbol, ctx)
        out = []
        for detail in item["details"]:
            position = detail.get("posSide")
            side = (
                liquidated_side(position, POSITION_SIDES, what)
                if position in POSITION_SIDES
                else liquidated_side(detail.get("side"), ORDER_SIDES, what)
            )
            price = positive(detail["bkPx"], f"{what} bkPx")
            size = sized(symbol, positive(detail["sz"], f"{what} sz"), size_of, price)
            out.append(Liquidation("okx", symbol, base, time_ns(detail["ts"]), received_at_ns, side, price,
                                   size.quantity, size.notional_usd, source))  # fmt: skip
        return out

    def liquidation_history_params(self, symbol: str, before_ms: int | None = None) -> dict[str, str]:
        """Query of one page of filled swap liquidations of `symbol`'s family, older than `before_ms` when given."""
        base, _, rest = symbol.partition("/")
        params = {"instType": "SWAP", "instFamily": f"{base}-{rest.partition(':')[0]}", "state": "filled",
                  "limit": str(LIQUIDATION_PAGE)}  # fmt: skip
        if before_ms is not None:
            params["after"] = str(before_ms)
        return params

    def liquidation_history(
        self, call: Any, symbol: str, start_ms: int, end_ms: int, ctx: ParseContext
    ) -> list[Liquidation]:
        """Pages back from `end_ms` (newest first, `after` the oldest seen) until `start_ms` or an empty page.

        ccxt has no method for the endpoint: `call("request", path, "public", "GET", params)` is its generic one.
        """
        found: list[Liquidation] = []
        cursor = end_ms
        while cursor > start_ms:
            params = self.liquidation_history_params(symbol, before_ms=cursor)
            body = call("request", LIQUIDATION_HISTORY_PATH.removeprefix("/api/v5/"), "public", "GET", params)
            page = [liq for liq in self.parse_liquidation_history(body, 0, ctx) if liq.symbol == symbol]
            if not page:
                break
            oldest = min(liq.ts for liq in page) // NS_PER_MS
            found += [liq for liq in page if start_ms * NS_PER_MS <= liq.ts < end_ms * NS_PER_MS]
            if oldest >= cursor:
                break
            cursor = oldest
        return sorted(found, key=lambda liq: liq.ts)

    def parse_liquidation_history(self, body: Any, received_at_ns: int, ctx: ParseContext) -> list[Liquidation]:
        """One REST page (`{"code": "0", "data": [...]}`) to liquidations; a refused request raises naming the code."""
        if not isinstance(body, dict) or body.get("code") != "0" or not isinstance(body.get("data"), list):
            raise MalformedMessage(f"okx {LIQUIDATION_HISTORY_PATH}: unexpected answer {str(body)[:200]}")
        return [liq for item in body["data"] for liq in self._liquidations(item, received_at_ns, ctx, source="rest")]

    def liquidation_items(self, liquidations: list[Liquidation]) -> list[dict[str, Any]]:
        """Items as the channel and the REST history state them, one per instrument, its details newest first."""
        items: dict[str, dict[str, Any]] = {}
        for liq in sorted(liquidations, key=lambda x: -x.ts):
            native = self.native_symbol(liq.symbol)
            inverse = self.inverse_perp(liq.symbol)
            contracts = liq.notional_usd / inverse.contract_usd if inverse else liq.quantity / LINEAR_CONTRACT_COINS
            family = native.removesuffix("-SWAP")
            item = items.setdefault(
                native, {"details": [], "instFamily": family, "instId": native, "instType": "SWAP", "uly": family}
            )
            item["details"].append(
                {
                    "bkLoss": "0",
                    "bkPx": emit_number(liq.price),
                    "ccy": "",
                    "posSide": liq.side,
                    "side": "sell" if liq.side == LONG else "buy",
                    "sz": emit_number(contracts),
                    "ts": str(liq.ts // NS_PER_MS),
                }  # fmt: skip
            )
        return list(items.values())

    def encode_liquidations(self, liquidations: list[Liquidation], session: EmulatedSession) -> list[str]:
        if not session.liquidations_all or not liquidations:
            return []
        arg = {"channel": LIQUIDATION_CHANNEL, "instType": "SWAP"}
        return [json.dumps({"arg": arg, "data": self.liquidation_items(liquidations)})]


ADAPTER = OkxAdapter()
