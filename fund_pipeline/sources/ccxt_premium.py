"""Premium-index history through ccxt's implicit API: the ccxt source's half of `PremiumHistorySource`.

An unmodified ccxt calls each venue's endpoint by its implicit method (binance
`fapiPublicGetPremiumIndexKlines`, bybit `publicGetV5MarketPremiumIndexPriceKline`, okx
`publicGetPublicPremiumHistory`, hyperliquid `publicPostInfo` with `fundingHistory`); what to ask and how
to read the answer is the adapter's (`RestSpec.premium`, `premium_params`, `premium_rows`), the paging is
here. Requests go through the source's `_call`, so they are retried and paced by the venue's documented
limits like every other history call.

Each sample is stamped when it is known (a one-minute kline at its close, an okx row at its generation
time, a hyperliquid record at its hour's last millisecond) and carries the interval of the window it falls
in, from the settled prints around it (the symbol's current interval past the last settlement, or where
the funding history does not reach back that far). Deribit publishes no premium-index history, bybit none
of its inverse perps (its endpoint covers USDT and USDC perps); binance's COIN-M is `dapi`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fund_pipeline.domain.predicted import SAMPLE_COLUMNS, FundingFormula
from fund_pipeline.domain.time import MAX_INTERVAL_H, epoch_ms, to_utc
from fund_pipeline.sources.base import HistoryDepthError
from fund_pipeline.venues.adapter import PremiumHistory, PremiumSample
from fund_pipeline.venues.registry import UnknownVenueError, adapter
from fund_pipeline.venues.wire import MalformedMessage

log = logging.getLogger(__name__)

# Settled prints this far past the range give the interval of a window still open at its end.
SETTLED_LEAD = pd.Timedelta(hours=MAX_INTERVAL_H)


class CcxtReads(Protocol):
    """What the premium history reads of the ccxt source (`CcxtSource`): its paced callers, markets and clock."""

    def caller(self, venue: str) -> Callable[..., Any]: ...

    def cached_caller(self, venue: str) -> Callable[..., Any]: ...

    def ccxt_markets(self, venue: str) -> dict: ...

    def check_symbol(self, venue: str, symbol: str) -> dict: ...

    def interval_h(self, venue: str, symbol: str) -> float: ...

    def perp_symbols(self, venue: str) -> list[str]: ...

    def venue_now(self, venue: str) -> pd.Timestamp: ...

    def funding_prints(self, venue: str, start, end) -> pd.DataFrame: ...


class NoPremiumHistoryError(UnknownVenueError):
    """The venue publishes no premium-index history (deribit), so its predicted rates cannot be rebuilt."""


def premium_endpoint(venue: str) -> PremiumHistory:
    """The venue's premium-history endpoint, or NoPremiumHistoryError naming the venue."""
    rest = adapter(venue).rest
    spec = None if rest is None else rest.premium
    if spec is None:
        raise NoPremiumHistoryError(
            f"{venue} publishes no premium-index history; its predicted rates cannot be rebuilt"
        )
    return spec


def premium_method(spec: PremiumHistory, inverse: bool) -> str | None:
    """The implicit method of a linear or coin-margined perp's premium history (None: the venue has none)."""
    return spec.inverse_method if inverse else spec.method


def documented_formulas(source: CcxtReads, venue: str, symbols: list[str]) -> dict[str, FundingFormula]:
    """Each symbol's documented funding formula with the cap and floor the venue lists for it now (binance
    `fundingInfo`, bybit instruments-info), by the venue adapter's REST rule; the venue's cap where it lists none."""
    markets = {symbol: source.check_symbol(venue, symbol) for symbol in symbols}
    return adapter(venue).rest_funding_formulas(markets, source.cached_caller(venue))


def symbol_premiums(source: CcxtReads, venue: str, symbol: str, start_ms: int, end_ms: int) -> list[PremiumSample]:
    """The samples of one symbol known in [start_ms, end_ms), asked window by window, oldest first, no duplicates.

    A window spans page - 1 rows at the endpoint's density, so a full page never hides a row.
    """
    spec = premium_endpoint(venue)
    venue_adapter = adapter(venue)
    method = premium_method(spec, venue_adapter.inverse_perp(symbol) is not None)
    if method is None:
        raise NoPremiumHistoryError(f"{venue} publishes no premium-index history of its coin-margined {symbol}")
    span = (spec.page - 1) * spec.step_ms
    found: dict[int, float] = {}
    for lo in range(start_ms, end_ms, span):
        hi = min(lo + span, end_ms)
        response = source.caller(venue)(method, venue_adapter.premium_params(symbol, lo, hi, spec.page))
        try:
            rows = venue_adapter.premium_rows(response)
        except MalformedMessage as bad:
            raise MalformedMessage(f"{venue} {spec.endpoint} for {symbol}: {bad}") from bad
        found.update((s.known_ms, s.premium) for s in rows if lo <= s.known_ms < hi)
    return [PremiumSample(t, found[t]) for t in sorted(found)]


def window_intervals(known_ms: np.ndarray, settled: pd.DataFrame, current_h: float) -> np.ndarray:
    """The interval of the window each instant falls in: that of the first settlement after it, else `current_h`."""
    funding_ms = (settled["funding_time"].astype("int64") // 1_000_000).to_numpy()
    order = np.argsort(funding_ms, kind="stable")
    funding_ms, interval = funding_ms[order], settled["interval_h"].to_numpy(dtype=np.float64)[order]
    if len(funding_ms) == 0:
        return np.full(len(known_ms), current_h)
    after = np.searchsorted(funding_ms, known_ms, side="right")
    return np.where(after < len(funding_ms), interval[np.minimum(after, len(funding_ms) - 1)], current_h)


def premium_history(source: CcxtReads, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """`PremiumHistorySource.premium_samples` for the source's perps of `venue`: SAMPLE_COLUMNS, ts in [start,
    end) and not after the venue's clock."""
    spec, venue_adapter = premium_endpoint(venue), adapter(venue)
    if end < start:
        raise ValueError(f"premium_samples: end {end} is before start {start}")
    end_ms = min(epoch_ms(end), epoch_ms(source.venue_now(venue)) + 1)
    try:
        settled = source.funding_prints(venue, start, end + SETTLED_LEAD)
    except HistoryDepthError as shallow:
        log.warning("%s: windows' intervals taken as the current ones: %s", venue, shallow)
        settled = pd.DataFrame(columns=["symbol", "funding_time", "interval_h"])
    frames = []
    symbols = source.perp_symbols(venue)
    served = [s for s in symbols if premium_method(spec, venue_adapter.inverse_perp(s) is not None) is not None]
    if len(served) < len(symbols):
        log.warning("%s: no premium-index history of %s (coin-margined)", venue, sorted(set(symbols) - set(served)))
    for symbol in served:
        samples = symbol_premiums(source, venue, symbol, epoch_ms(start), end_ms)
        if not samples:
            continue
        known_ms = np.array([s.known_ms for s in samples], dtype=np.int64)
        own = settled[settled["symbol"] == symbol]
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "base": source.ccxt_markets(venue)[symbol]["base"],
                    "ts": to_utc(pd.Series(known_ms * 1_000_000)),
                    "premium": np.array([s.premium for s in samples], dtype=np.float64),
                    "interval_h": window_intervals(known_ms, own, source.interval_h(venue, symbol)),
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: [] for c in SAMPLE_COLUMNS})
    return pd.concat(frames, ignore_index=True)[SAMPLE_COLUMNS]
