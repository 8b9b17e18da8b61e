"""REST backfill from the real venues through ccxt (synchronous API).

One module: pagination, retries and the MarketSource reads share one exchange cache, one pacer and
the venues' clocks (`sources.pacing`); what is venue-specific sits in the adapters' `RestSpec`.

Pagination is done here, not by ccxt's `paginate` (which steps by a fixed 8h and silently
drops rows of 4h/1h symbols): each request asks for a time window that holds fewer rows than
the venue's page limit at the symbol's own interval, and a full page is split in two and asked
again, so a symbol whose interval shortened loses nothing either.

Errors: rate limits, bans and 5xx (ccxt NetworkError) are retried with exponential backoff
plus jitter, honouring Retry-After, for a bounded number of attempts; then the venue is
declared unavailable with `VenueUnavailableError`, which fails that venue's partition only.

What each venue offers in `bars` (NaN where it has none):
  binance, bybit, okx: perp, spot, mark, index and open interest.
  hyperliquid: perp only (no spot pair for the perp, no mark/index candles, no OI history).
  deribit: perp only (no spot, mark/index candles or OI history).
Hourly volumes: the venues report base volume per candle; `volume_usd` is base volume × close.
Coin-margined perps (`inverse`) are listed with ccxt's inverse market types where the adapter names them;
their open interest in USD is ccxt's value, except binance COIN-M's, which counts coins: contracts × USD per
contract by the contract rule (domain.contracts). Where ccxt's unified open-interest history is not the
instrument's own (okx's is per currency, linear and inverse summed), the adapter's per-instrument endpoint
(`RestSpec.instrument_oi`) is read through ccxt's implicit API instead.
Binance has no public max-leverage endpoint, so its `max_leverage` is NaN.

Premium-index history (`PremiumHistorySource`, for the predicted-rate reconstruction) is in `ccxt_premium`.
Funding intervals, pages, rate limits (paced by `Pacer`) and history depths (a backfill older than
an endpoint keeps fails naming venue, endpoint and depth) come from the venue adapters.
Deribit publishes an hourly record of the trailing 8h rate; its settlements are the records
on the 8h grid.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import ccxt
import numpy as np
import pandas as pd

from fund_pipeline.domain.contracts import CONTRACT_SIZE, OI_BASE, OI_CONTRACTS, market_terms, open_interest_usd
from fund_pipeline.domain.predicted import FundingFormula
from fund_pipeline.domain.prints import (
    BAR_COLUMNS,
    MARKET_COLUMNS,
    MARKET_TERMS_COLUMNS,
    empty_prints,
    floor_to_grid,
    to_utc,
    validate_prints,
)
from fund_pipeline.domain.time import KNOWN_INTERVALS_H, MS_PER_HOUR, epoch_ms
from fund_pipeline.sources.base import HistoryDepthError, VenueUnavailableError
from fund_pipeline.sources.ccxt_premium import documented_formulas, premium_history
from fund_pipeline.sources.pacing import Pacer, VenueClocks
from fund_pipeline.venues.adapter import RestSpec, VenueAdapter
from fund_pipeline.venues.registry import SIM_VENUES, UnknownVenueError, adapter
from fund_pipeline.venues.wire import MalformedMessage

HOUR_MS = MS_PER_HOUR
# The longest window a supported venue settles: the look-back that gives a range's first print a predecessor.
LONGEST_INTERVAL_H = max(KNOWN_INTERVALS_H)
MAX_RETRY_DELAY_S = 30.0

log = logging.getLogger(__name__)


def utc(t) -> pd.Timestamp:
    return to_utc([t])[0]


class CcxtSource:
    """MarketSource over the venues' REST APIs; `api_base_url` points ccxt at the emulator."""

    name = "ccxt"

    def __init__(
        self,
        venues: tuple[str, ...] | list[str] = SIM_VENUES,
        symbols: dict[str, list[str]] | None = None,
        api_base_url: str | None = None,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        timeout_s: float = 10,
        now: Callable[[], pd.Timestamp] | None = None,
        throttle: bool = True,
        rate_limit_scale: float = 1.0,
        venue_now: Callable[[str], pd.Timestamp] | None = None,
        bases: tuple[str, ...] | list[str] | None = None,
        inverse: bool = False,
    ) -> None:
        """`now` is the venues' current time (the emulator's clock in tests); by default each venue's own
        clock as its REST API states it (`VenueClocks`), which is the one its history depths count from.

        `venue_now(venue)`, when given, is each venue's own clock (the live collector's) and wins over `now`.
        `bases` keeps the venues' linear perps of those base assets (default every listed one); `inverse` adds
        their coin-margined perps (binance COIN-M, bybit inverse, okx -USD-SWAP, deribit BTC/ETH-PERPETUAL).
        `throttle` paces requests to the venues' documented limits (each adapter's RateLimit data;
        `rate_limit_scale` multiplies their windows, for an emulator that compresses them alike).
        Tests against an emulator without limits turn it off; 429s are still retried.
        """
        unknown = [v for v in venues if v not in SIM_VENUES]
        if unknown:
            raise UnknownVenueError(f"ccxt source: unsupported venue(s) {unknown}; supported {list(SIM_VENUES)}")
        if max_retries < 0 or backoff_base_s < 0 or timeout_s <= 0 or not rate_limit_scale > 0:
            raise ValueError(
                "ccxt source: max_retries and backoff_base_s must be >= 0, timeout_s and rate_limit_scale > 0"
            )
        self._venues = tuple(venues)
        self._symbols = {v: list(s) for v, s in (symbols or {}).items()}
        for venue in self._symbols:
            self._check_venue(venue)
        self._api_base_url = api_base_url.rstrip("/") if api_base_url else None
        self._max_retries = max_retries
        self._backoff_base_s = backoff_base_s
        self._timeout_ms = int(timeout_s * 1000)
        at_now: Callable[[str], pd.Timestamp] | None = (lambda venue: now()) if now is not None else None
        self._venue_now = venue_now or at_now or VenueClocks(self.server_time)
        self._bases = tuple(bases) if bases is not None else None
        self._inverse = bool(inverse)
        if self._bases is not None and not self._bases:
            raise ValueError("ccxt source: bases is empty; leave it unset for every listed base, or name at least one")
        self._throttle = throttle
        self._local = threading.local()
        self._pacers = {v: Pacer(self._spec(v).rate_limits, rate_limit_scale) for v in self._venues}
        self.rate_limited = 0  # 429/418 answers met (and retried)

    @staticmethod
    def _adapter(venue: str) -> VenueAdapter:
        return adapter(venue)

    def _spec(self, venue: str) -> RestSpec:
        spec = adapter(venue).rest
        if spec is None:
            raise UnknownVenueError(f"ccxt source: venue {venue!r} has no REST mapping")
        return spec

    # ------------------------------------------------------------ plumbing

    def venues(self) -> tuple[str, ...]:
        return self._venues

    def _check_venue(self, venue: str) -> None:
        if venue not in self._venues:
            raise UnknownVenueError(
                f"venue {venue!r} is not served by the 'ccxt' source; it serves {list(self._venues)}"
            )

    def _exchange(self, venue: str) -> ccxt.Exchange:
        """This thread's exchange instance for `venue` (ccxt instances are not thread-safe)."""
        self._check_venue(venue)
        exchanges = self._local.__dict__.setdefault("exchanges", {})
        if venue not in exchanges:
            spec = self._spec(venue)
            options = dict(spec.options)
            if self._inverse and spec.inverse_market_types:
                listed = options.get("fetchMarkets", {}).get("types", [])
                options["fetchMarkets"] = {"types": [*listed, *spec.inverse_market_types]}
            # Pacing is the Pacer's, from the adapter's limits; ccxt's own limiter would add a second one.
            exchange = getattr(ccxt, spec.ccxt_id)(
                {"enableRateLimit": False, "timeout": self._timeout_ms, "options": options}
            )
            if self._api_base_url:
                exchange.urls["api"] = self._point_at(exchange.urls["api"], f"{self._api_base_url}/{venue}")
            exchanges[venue] = exchange
        return exchanges[venue]

    @staticmethod
    def _point_at(api_urls, base: str):
        """Every URL of ccxt's `urls['api']` with its scheme and host replaced by `base`."""
        if isinstance(api_urls, str):
            return re.sub(r"^(https?|wss?)://[^/]+", base, api_urls)
        return {key: CcxtSource._point_at(value, base) for key, value in api_urls.items()}

    def _call(self, venue: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One ccxt call with retries on network errors, rate limits and 5xx; the last error's status and body kept."""
        exchange = self._exchange(venue)
        last_error: Exception | None = None
        for attempt in range(self._max_retries + 1):
            if self._throttle:
                self._pacers[venue].wait(method)
            try:
                return getattr(exchange, method)(*args, **kwargs)
            except ccxt.NetworkError as error:
                last_error = error
                if isinstance(error, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
                    self.rate_limited += 1
                log.warning(
                    "%s %s failed (attempt %d of %d): %s: %s",
                    venue, method, attempt + 1, self._max_retries + 1, type(error).__name__, str(error)[:300],
                )  # fmt: skip
                if attempt == self._max_retries:
                    break
                time.sleep(self._retry_delay_s(exchange, attempt))
            except ccxt.BadSymbol as error:
                raise UnknownVenueError(f"{venue}: {error}") from error
        body = (self._exchange(venue).last_http_response or "")[:500]
        raise VenueUnavailableError(
            f"venue {venue!r} unavailable after {self._max_retries + 1} attempts of {method}: "
            f"{type(last_error).__name__}: {last_error}" + (f"; last response body: {body}" if body else "")
        ) from last_error

    def caller(self, venue: str) -> Callable[..., Any]:
        """`call(method, *args)`: a ccxt call on `venue` with retries and pacing, for the adapters' REST rules."""
        return lambda method, *args, **kwargs: self._call(venue, method, *args, **kwargs)

    def _retry_delay_s(self, exchange: ccxt.Exchange, attempt: int) -> float:
        backoff = self._backoff_base_s * (2**attempt) * (1.0 + random.random())
        headers = exchange.last_response_headers or {}
        retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            backoff = max(backoff, float(retry_after)) if retry_after is not None else backoff
        except ValueError:
            pass
        return min(backoff, MAX_RETRY_DELAY_S)

    def ccxt_markets(self, venue: str) -> dict:
        exchange = self._exchange(venue)
        if not exchange.markets:
            self._call(venue, "load_markets")
        return exchange.markets

    def perp_symbols(self, venue: str) -> list[str]:
        """The venue's perps this source serves (its bases' or symbols'), linear and, with `inverse`, coin-margined."""
        markets = self.ccxt_markets(venue)
        listed = sorted(s for s, m in markets.items() if self._is_perp(m))
        if self._bases is not None:
            have = {markets[s]["base"] for s in listed}
            absent = [b for b in self._bases if b not in have]
            if absent:
                raise UnknownVenueError(
                    f"{venue}: no listed {self._kinds} perp of base(s) {absent}; listed bases: {sorted(have)}"
                )
            listed = [s for s in listed if markets[s]["base"] in self._bases]
        wanted = self._symbols.get(venue)
        if wanted is None:
            return listed
        missing = [s for s in wanted if s not in listed]
        if missing:
            raise UnknownVenueError(f"{venue}: symbol(s) {missing} not listed; listed perps: {listed}")
        return wanted

    def _is_perp(self, market: dict) -> bool:
        """A perpetual swap this source serves: linear, or coin-margined when asked for."""
        return bool(market.get("swap") and (market.get("linear") or (self._inverse and market.get("inverse"))))

    @property
    def _kinds(self) -> str:
        return "linear or inverse" if self._inverse else "linear"

    def check_symbol(self, venue: str, symbol: str) -> dict:
        market = self.ccxt_markets(venue).get(symbol)
        if market is None or not self._is_perp(market):
            raise UnknownVenueError(f"{venue}: symbol {symbol!r} is not a listed {self._kinds} perp")
        return market

    # ------------------------------------------------------------ paging

    def _paged(
        self,
        venue: str,
        method: str,
        symbol: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        page: int,
        until_key: str = "until",
        params: dict | None = None,
    ) -> list:
        """All rows with time in [start_ms, end_ms), asked window by window.

        A window spans page-1 steps so it cannot fill a page at the expected density; a full page
        means the data is denser than expected (e.g. the interval shortened): split and ask again.
        """
        params = params or {}
        rows: list = []
        windows = [(t, min(t + (page - 1) * step_ms, end_ms)) for t in range(start_ms, end_ms, (page - 1) * step_ms)]
        while windows:
            lo, hi = windows.pop(0)
            window_params = dict(params, **{until_key: hi - 1})
            got = self._call(venue, method, symbol, *self._since_args(method, lo, page), params=window_params)
            if len(got) >= page and hi - lo > 1:
                mid = (lo + hi) // 2
                windows[:0] = [(lo, mid), (mid, hi)]
                continue
            rows.extend(got)
        return rows

    @staticmethod
    def _since_args(method: str, since: int, page: int) -> tuple:
        if method in ("fetch_ohlcv", "fetch_open_interest_history"):
            return ("1h", since, page)
        return (since, page)

    # ------------------------------------------------------------ funding

    def interval_h(self, venue: str, symbol: str) -> float:
        """The symbol's current funding interval by the venue adapter's rule (used to size pages)."""
        market = self.check_symbol(venue, symbol)
        return self._adapter(venue).rest_interval_h(market, self.cached_caller(venue))

    def cached_caller(self, venue: str) -> Callable[..., Any]:
        """Like `caller`; argument-less calls (venue-wide metadata such as fundingInfo) asked once per thread."""
        cache: dict[tuple[str, str], Any] = self._local.__dict__.setdefault("metadata", {})
        call = self.caller(venue)

        def cached(method: str, *args: Any, **kwargs: Any) -> Any:
            if args or kwargs:
                return call(method, *args, **kwargs)
            if (venue, method) not in cache:
                cache[(venue, method)] = call(method)
            return cache[(venue, method)]

        return cached

    def stream_intervals(self, venue: str, symbols: list[str]) -> dict[str, float]:
        """Intervals the venue's stream does not carry, by its adapter's REST rule (fresh, not cached)."""
        for symbol in symbols:
            self.check_symbol(venue, symbol)
        return self._adapter(venue).stream_intervals(self.caller(venue), symbols)

    def venue_now(self, venue: str) -> pd.Timestamp:
        """The venue's current time, by the clock this source counts history depths from."""
        return utc(self._venue_now(venue))

    def oldest_served(self, venue: str, method: str) -> pd.Timestamp | None:
        """The oldest time `method` still answers for on `venue` now (None: its whole history)."""
        depth = self._spec(venue).depth(method)
        if depth is None:
            return None
        return pd.Timestamp(depth.oldest_ms(epoch_ms(self.venue_now(venue))), unit="ms", tz="UTC")

    def depth_shortfall(self, venue: str, method: str, start: pd.Timestamp) -> str | None:
        """What is wrong with asking `method` from `start` (venue, endpoint, depth, oldest), None when it serves it."""
        depth, oldest = self._spec(venue).depth(method), self.oldest_served(venue, method)
        if depth is None or oldest is None or start >= oldest:
            return None
        kept = f"{depth.days:g} days" if depth.rows == 0 else f"the latest {depth.rows} rows"
        return (
            f"{venue} {depth.endpoint} keeps only {kept} (oldest {oldest:%Y-%m-%d %H:%M} UTC); "
            f"asked from {start:%Y-%m-%d %H:%M} UTC"
        )

    def check_depth(self, venue: str, method: str, start: pd.Timestamp) -> bool:
        """Whether `method` still serves `start`; HistoryDepthError for funding, a warning and False for the rest."""
        message = self.depth_shortfall(venue, method, start)
        if message is None:
            return True
        if method == "fetch_funding_rate_history":
            raise HistoryDepthError(message + ": settled prints older than that cannot be backfilled from this venue")
        log.warning("%s: left out (NaN)", message)
        return False

    def _settled(self, venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Settled prints of one symbol with funding_time in [start, end)."""
        market = self.check_symbol(venue, symbol)
        interval_h = self.interval_h(venue, symbol)
        spec = self._spec(venue)
        self.check_depth(venue, "fetch_funding_rate_history", start)
        # One longest window earlier, so the first print in range has a predecessor to infer its interval.
        lookback_ms = int(LONGEST_INTERVAL_H * HOUR_MS)
        step_ms = int((spec.funding_record_h or min(interval_h, LONGEST_INTERVAL_H)) * HOUR_MS)
        raw = self._paged(
            venue,
            "fetch_funding_rate_history",
            symbol,
            epoch_ms(start) - lookback_ms,
            epoch_ms(end),
            step_ms,
            spec.funding_page,
            until_key=spec.funding_until,
        )
        if spec.funding_record_h:
            raw = [r for r in raw if r["timestamp"] % int(interval_h * HOUR_MS) == 0]
        if not raw:
            return empty_prints()
        frame = (
            pd.DataFrame(
                {
                    "ts": to_utc(pd.Series([r["timestamp"] for r in raw]).astype("int64") * 1_000_000),
                    "rate": [r["fundingRate"] for r in raw],
                    "mark_price": [_float((r.get("info") or {}).get("markPrice")) for r in raw],
                }
            )
            .drop_duplicates("ts")
            .sort_values("ts")
            .reset_index(drop=True)
        )
        frame["interval_h"] = intervals_from_gaps(frame["ts"], interval_h)
        frame["funding_time"] = floor_to_grid(frame["ts"], frame["interval_h"])
        frame = frame[(frame["funding_time"] >= start) & (frame["funding_time"] < end)]
        return validate_prints(
            frame.assign(
                venue=venue,
                symbol=symbol,
                base=market["base"],
                kind="settled",
                received_at=pd.NaT,
                index_price=np.nan,
                source="rest",
            )
        )

    def earliest_settled(self, venue: str, start, end) -> pd.Timestamp | None:
        """The first settlement time in [start, end) among the venue's symbols (None: none), read forward page
        by page: where a backfill's history begins when it asks from before the symbols were listed."""
        start, end = utc(start), utc(end)
        spec, firsts = self._spec(venue), []
        method = "fetch_funding_rate_history"
        for symbol in self.perp_symbols(venue):
            step_ms = int((spec.funding_record_h or self.interval_h(venue, symbol)) * HOUR_MS)
            span_ms = (spec.funding_page - 1) * step_ms
            for lo in range(epoch_ms(start), epoch_ms(end), span_ms):
                hi = min(lo + span_ms, epoch_ms(end))
                got = self._call(venue, method, symbol, lo, spec.funding_page, params={spec.funding_until: hi - 1})
                if len(got) >= spec.funding_page:  # denser than its interval now: the page may not hold the first
                    got = self._paged(venue, method, symbol, lo, hi, step_ms, spec.funding_page, spec.funding_until)
                times = [r["timestamp"] for r in got if lo <= r["timestamp"] < hi]
                if times:
                    firsts.append(min(times))
                    break
        return pd.Timestamp(min(firsts), unit="ms", tz="UTC") if firsts else None

    def funding_prints(self, venue: str, start, end) -> pd.DataFrame:
        start, end = utc(start), utc(end)
        frames = [self._settled(venue, s, start, end) for s in self.perp_symbols(venue)]
        frames = [f for f in frames if len(f)]
        if not frames:
            return empty_prints()
        return pd.concat(frames, ignore_index=True).sort_values(["symbol", "funding_time"]).reset_index(drop=True)

    def last_settled(self, venue: str, symbol: str, n: int = 7) -> pd.DataFrame:
        """The last `n` settled prints of one symbol: the live collector's warm start."""
        if n <= 0:
            raise ValueError(f"last_settled: n must be positive, got {n}")
        interval_h = self.interval_h(venue, symbol)
        end = utc(self._venue_now(venue)) + pd.Timedelta(milliseconds=1)
        start = end - pd.Timedelta(hours=interval_h * (n + 2))
        return self._settled(venue, symbol, start, end).tail(n).reset_index(drop=True)

    def settled_since(self, venue: str, symbol: str, since) -> pd.DataFrame:
        """Settled prints of one symbol with funding_time >= since: gap-fill after a reconnect."""
        end = utc(self._venue_now(venue)) + pd.Timedelta(milliseconds=1)
        return self._settled(venue, symbol, utc(since), end)

    def premium_samples(self, venue: str, start, end) -> pd.DataFrame:
        """Premium-index history of the venue's perps with ts (when known) in [start, end) (`ccxt_premium`)."""
        self._check_venue(venue)
        return premium_history(self, venue, utc(start), utc(end))

    def funding_formulas(self, venue: str, symbols: list[str]) -> dict[str, FundingFormula]:
        """The documented formula of each symbol, as the venue's adapter states it."""
        self._check_venue(venue)
        return documented_formulas(self, venue, symbols)

    def server_time(self, venue: str) -> pd.Timestamp:
        """The venue's clock as its REST API states it (ccxt fetch_time)."""
        return pd.Timestamp(int(self._call(venue, "fetch_time")), unit="ms", tz="UTC")

    # ------------------------------------------------------------ bars and markets

    def _candles(
        self, venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp, price: str | None, prefix: str
    ) -> pd.DataFrame:
        params = {} if price is None else {"price": price}
        raw = self._paged(
            venue,
            "fetch_ohlcv",
            symbol,
            epoch_ms(start),
            epoch_ms(end),
            HOUR_MS,
            self._spec(venue).ohlcv_page,
            params=params,
        )
        frame = pd.DataFrame(raw, columns=["ts", "open", "high", "low", "close", "volume"])
        frame["ts"] = to_utc(frame["ts"].astype("int64") * 1_000_000)
        frame[f"{prefix}volume_usd"] = frame["volume"] * frame["close"]
        frame = frame.drop(columns="volume").drop_duplicates("ts")
        return frame.rename(columns={c: f"{prefix}{c}" for c in ("open", "high", "low", "close")}).set_index("ts")

    def _oi_method(self, venue: str) -> str:
        """The call open interest is read with: the venue's per-instrument endpoint where it states one, else ccxt's."""
        own = self._spec(venue).instrument_oi
        return "fetch_open_interest_history" if own is None else own.method

    def _instrument_open_interest(self, venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
        """USD open interest of one instrument from the venue's own endpoint (`RestSpec.instrument_oi`), asked window
        by window (page - 1 rows each, so a full page hides none), timed in [start, end)."""
        own, venue_adapter = self._spec(venue).instrument_oi, self._adapter(venue)
        assert own is not None
        span = (own.page - 1) * own.step_ms
        found: dict[int, float] = {}
        for lo in range(epoch_ms(start), epoch_ms(end), span):
            hi = min(lo + span, epoch_ms(end))
            response = self._call(venue, own.method, venue_adapter.open_interest_params(symbol, lo, hi, own.page))
            try:
                rows = venue_adapter.open_interest_rows(response)
            except MalformedMessage as bad:
                raise MalformedMessage(f"{venue} {own.endpoint} for {symbol}: {bad}") from bad
            found.update((r.ts_ms, r.usd) for r in rows if lo <= r.ts_ms < hi)
        times = sorted(found)
        index = to_utc(pd.Series(times, dtype="int64") * 1_000_000)
        return pd.Series([found[t] for t in times], index=index, dtype="float64")

    def _open_interest(
        self, venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp, close: pd.Series
    ) -> pd.Series:
        method, spec = "fetch_open_interest_history", self._spec(venue)
        if spec.instrument_oi is not None:
            return self._instrument_open_interest(venue, symbol, start, end).reindex(close.index)
        params = self._adapter(venue).history_params(method, symbol)
        raw = self._paged(venue, method, symbol, epoch_ms(start), epoch_ms(end), HOUR_MS, spec.oi_page, params=params)
        if not raw:
            return pd.Series(np.nan, index=close.index)
        ts = to_utc(pd.Series([r["timestamp"] for r in raw]).astype("int64") * 1_000_000)
        value = pd.Series([_float(r.get("openInterestValue")) for r in raw], index=ts)
        amount = pd.Series([_float(r.get("openInterestAmount")) for r in raw], index=ts)
        market = self.check_symbol(venue, symbol)
        if market.get("inverse") and spec.inverse_oi_value == "coin":
            # The value counts coins, the amount contracts: USD by the contract rule (contracts x USD per contract).
            stated = pd.DataFrame(
                {
                    "symbol": symbol,
                    "open_interest_usd": np.nan,
                    OI_CONTRACTS: amount,
                    CONTRACT_SIZE: _float(market.get("contractSize")),
                    OI_BASE: value,
                    "close": close.reindex(ts),
                }
            )
            usd = open_interest_usd(stated)
        else:
            usd = value.fillna(amount * close.reindex(ts))
        return usd[~usd.index.duplicated()].reindex(close.index)

    def _symbol_bars(self, venue: str, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        market = self.check_symbol(venue, symbol)
        spec = self._spec(venue)
        if not self.check_depth(venue, "fetch_ohlcv", start):
            raise HistoryDepthError(f"{venue}: hourly candles from {start} are older than the venue serves")
        perp = self._candles(venue, symbol, start, end, None, "")
        out = perp.copy()
        spot_symbol = f"{market['base']}/{market['quote']}"
        if spec.has_spot and spot_symbol in self.ccxt_markets(venue):
            out = out.join(self._candles(venue, spot_symbol, start, end, None, "spot_"))
        if spec.has_mark_index:
            out["mark_price"] = self._candles(venue, symbol, start, end, "mark", "m_")["m_close"]
            out["index_price"] = self._candles(venue, symbol, start, end, "index", "i_")["i_close"]
        if spec.oi_page and self.check_depth(venue, self._oi_method(venue), start):
            out["open_interest_usd"] = self._open_interest(venue, symbol, start, end, out["close"])
        out = out.reset_index().assign(venue=venue, symbol=symbol, base=market["base"])
        out = out[(out["ts"] >= start) & (out["ts"] < end)]
        return out.reindex(columns=BAR_COLUMNS)

    def bars(self, venue: str, start, end) -> pd.DataFrame:
        start, end = utc(start), utc(end)
        frames = [self._symbol_bars(venue, s, start, end) for s in self.perp_symbols(venue)]
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=BAR_COLUMNS)
        out["ts"] = to_utc(out["ts"])
        for col in BAR_COLUMNS[4:]:
            out[col] = pd.to_numeric(out[col]).astype("float64")
        return out.sort_values(["symbol", "ts"]).reset_index(drop=True)

    def markets(self, venue: str, day) -> pd.DataFrame:
        """Listed perps on `day`: interval of the day's last settlement, the day's perp volume, OI at day end, and
        the market terms (margin by the unified symbol, contract size as ccxt states it)."""
        day = utc(day).floor("D")
        end = day + pd.Timedelta(days=1)
        rows = []
        for symbol in self.perp_symbols(venue):
            market = self.check_symbol(venue, symbol)
            prints = self._settled(venue, symbol, day, end)
            bars = self._symbol_bars(venue, symbol, day, end)
            leverage = ((market.get("limits") or {}).get("leverage") or {}).get("max")
            if leverage is None:  # ccxt leaves deribit's max_leverage in the raw instrument
                leverage = (market.get("info") or {}).get("max_leverage")
            rows.append(
                {
                    "date": day,
                    "venue": venue,
                    "symbol": symbol,
                    "base": market["base"],
                    "quote": market["quote"],
                    "interval_h": prints["interval_h"].iloc[-1] if len(prints) else self.interval_h(venue, symbol),
                    "volume_usd_24h": bars["volume_usd"].sum(min_count=1),
                    "open_interest_usd": bars["open_interest_usd"].dropna().iloc[-1]
                    if bars["open_interest_usd"].notna().any()
                    else np.nan,
                    "max_leverage": _float(leverage),
                    "contract_size": market.get("contractSize"),
                }
            )
        out = pd.DataFrame(rows, columns=MARKET_COLUMNS)
        out[MARKET_TERMS_COLUMNS] = market_terms(out["symbol"], out["contract_size"])
        out["date"] = to_utc(out["date"])
        for col in ("interval_h", "volume_usd_24h", "open_interest_usd", "max_leverage"):
            out[col] = pd.to_numeric(out[col]).astype("float64")
        return out


def intervals_from_gaps(ts: pd.Series, current_h: float) -> pd.Series:
    """Each print's interval: the hours since the previous print, unless a settlement is missing.

    A gap at least twice both neighbouring gaps (the venue's current interval standing in after
    the last print) spans a missing settlement, not a longer interval: it takes the smaller
    neighbour. A real interval change keeps its gap, as one side always has the same interval.
    The first print takes the next one's interval.
    """
    gaps = (ts.diff().dt.total_seconds() / 3600.0).round(0).where(lambda g: g > 0)
    before = gaps.shift(1)
    after = gaps.shift(-1).fillna(current_h)
    missing = (gaps >= 2 * before.fillna(0)) & (gaps >= 2 * after)
    gaps = gaps.mask(missing, np.fmin(before, after))
    return gaps.fillna(gaps.bfill()).fillna(current_h)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
