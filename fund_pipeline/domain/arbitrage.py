"""Cross-venue funding arbitrage: per base asset, the venue to be long and the venue to be short.

Positive funding is paid by longs to shorts, so the carry of a delta-neutral pair (long one perp,
short the same base's perp on another venue) per 8h is short rate − long rate, rates normalised to
8h. Pairs are ranked by that spread as an APR (simple, per unit of notional on each leg) net of
taker fees: four fills (open and close each leg) amortised over the holding period. Two rankings:
the venues' predicted rates for the open window, and, when given, forecast carry (a model's mean
8h rate over a horizon). Only markets in the day-before universe that pass the liquidity floors
(`universe.LiquidityFilter`) are traded: the universe of a day is known only at its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from fund_pipeline.domain.aggregates import PERIODS_PER_8H
from fund_pipeline.domain.prints import SchemaError, rate_to_8h, require_columns
from fund_pipeline.domain.time import aware_utc, to_utc
from fund_pipeline.domain.universe import LIQUIDITY_COLUMNS, LiquidityFilter

PREDICTED, FORECAST = "predicted", "forecast"
MARKET_KEY = ["venue", "symbol"]
PREDICTED_INPUT_COLUMNS = ["venue", "symbol", "kind", "funding_time", "ts", "rate", "interval_h"]
UNIVERSE_INPUT_COLUMNS = ["date", "venue", "symbol", "base", *LIQUIDITY_COLUMNS]
FORECAST_INPUT_COLUMNS = ["as_of", "venue", "symbol", "rate_8h"]
ARBITRAGE_COLUMNS = [
    "as_of",
    "base",
    "ranking",
    "long_venue",
    "long_symbol",
    "short_venue",
    "short_symbol",
    "long_rate_8h",
    "short_rate_8h",
    "spread_8h",
    "gross_apr",
    "fee_apr",
    "net_apr",
    "n_markets",
    "n_venues",
]
# An APR is the 8h rate times the 8h periods of a year (1095), as the aggregates' afr_1y.
APR_PER_8H = PERIODS_PER_8H["afr_1y"]
DAYS_PER_YEAR = 365.0
# Taker fills per leg: one to open, one to close.
FILLS_PER_LEG = 2
# Decisions are taken shortly before the 00/08/16 UTC settlements, where the 1h, 4h and 8h grids
# all settle at once: every venue's open window then ends at the same instant.
DECISION_GRID_H = 8
# A taker fee above 1 % per fill is a unit error (percent read as a decimal).
MAX_TAKER_FEE = 0.01


@dataclass(frozen=True)
class ArbitrageCosts:
    """Taker fee per fill (decimal) per venue, and the holding period the round trip is amortised over."""

    taker_fees: Mapping[str, float]
    holding_days: float = 7.0

    def __post_init__(self) -> None:
        if not self.holding_days > 0:
            raise ValueError(f"holding_days must be positive, got {self.holding_days}")
        bad = {v: f for v, f in self.taker_fees.items() if not 0.0 <= f < MAX_TAKER_FEE}
        if bad:
            raise ValueError(f"taker fees must be decimals per fill in [0, {MAX_TAKER_FEE}), got {bad}")

    def fee(self, venues: pd.Series) -> np.ndarray:
        unknown = sorted(set(venues) - set(self.taker_fees))
        if unknown:
            raise ValueError(f"no taker fee configured for venue(s) {unknown}; known: {sorted(self.taker_fees)}")
        return venues.map(self.taker_fees).to_numpy(dtype="float64")

    def fee_apr(self, long_fee: np.ndarray, short_fee: np.ndarray) -> np.ndarray:
        """Round-trip taker fees of both legs as an APR over the holding period."""
        return FILLS_PER_LEG * (long_fee + short_fee) * DAYS_PER_YEAR / self.holding_days


@dataclass(frozen=True)
class QuoteRule:
    """Which predicted print is a market's quote at a decision time: the latest at or before it, of the
    window still open then, not older than `max_age`."""

    max_age: pd.Timedelta = field(default=pd.Timedelta(minutes=30))


class ArbitrageTable(NamedTuple):
    """The best pair per as_of × base × ranking, and how many quotes were left out and why (summed over them)."""

    rows: pd.DataFrame
    excluded: dict[str, int]


def decision_times(start, end, lead: pd.Timedelta) -> pd.DatetimeIndex:
    """`lead` before each DECISION_GRID_H-hour settlement in (start, end]."""
    first, last = aware_utc(start, "start"), aware_utc(end, "end")
    if not pd.Timedelta(0) < lead < pd.Timedelta(hours=DECISION_GRID_H):
        raise ValueError(f"lead must be within (0, {DECISION_GRID_H}h), got {lead}")
    grid = pd.date_range(first.floor("D"), last, freq=f"{DECISION_GRID_H}h")
    return (grid[(grid > first) & (grid <= last)] - lead).as_unit("ns")


def next_window_quotes(predicted: pd.DataFrame, as_of, rule: QuoteRule) -> pd.DataFrame:
    """venue, symbol, rate_8h: each market's predicted rate for its window open at `as_of` (QuoteRule)."""
    require_columns(predicted, PREDICTED_INPUT_COLUMNS, "predicted prints")
    at = aware_utc(as_of, "as_of")
    rows = predicted.loc[predicted["kind"] == "predicted", PREDICTED_INPUT_COLUMNS]
    ts, funding_time = _utc(rows["ts"]), _utc(rows["funding_time"])
    in_force = (ts <= at) & (ts >= at - rule.max_age) & (funding_time > at)
    # `ts` filtered too: assigning the whole column to an empty selection would bring back every row, as NaN.
    rows = rows.loc[in_force].assign(ts=ts[in_force])
    rate = pd.to_numeric(rows["rate"], errors="coerce")
    if not np.isfinite(rate.to_numpy(dtype="float64")).all():
        raise SchemaError(f"predicted prints: NaN or infinite rate among the quotes at {at}")
    latest = rows.sort_values([*MARKET_KEY, "ts"], kind="stable").drop_duplicates(MARKET_KEY, keep="last")
    return latest.assign(rate_8h=rate_to_8h(latest["rate"], latest["interval_h"]))[[*MARKET_KEY, "rate_8h"]]


def funding_arbitrage(
    predicted: pd.DataFrame,
    universe: pd.DataFrame,
    as_of_times: pd.DatetimeIndex,
    costs: ArbitrageCosts,
    liquidity: LiquidityFilter,
    rule: QuoteRule,
    forecast_carry: pd.DataFrame | None = None,
) -> ArbitrageTable:
    """ARBITRAGE_COLUMNS: at each as_of, per base, the cross-venue pair with the highest net APR, by
    predicted rate and (rows of `forecast_carry` at that as_of: as_of, venue, symbol, rate_8h) by forecast.

    A base needs quotes on two venues; markets without a quote, outside the day-before universe or
    below the liquidity floors are left out and counted.
    """
    require_columns(predicted, PREDICTED_INPUT_COLUMNS, "predicted prints")
    require_columns(universe, UNIVERSE_INPUT_COLUMNS, "market universe")
    if forecast_carry is not None:
        require_columns(forecast_carry, FORECAST_INPUT_COLUMNS, "forecast carry")
    days = _utc(universe["date"]).dt.floor("D")
    predicted = predicted.assign(ts=_utc(predicted["ts"]), funding_time=_utc(predicted["funding_time"]))
    excluded = {"outside_universe": 0, "below_liquidity_floors": 0}
    parts = []
    for as_of in as_of_times:
        listed = universe.loc[days == as_of.floor("D") - pd.Timedelta(days=1)]
        liquid = listed.loc[liquidity.passes(listed), [*MARKET_KEY, "base"]]
        rankings = {PREDICTED: next_window_quotes(predicted, as_of, rule)}
        if forecast_carry is not None:
            at = _utc(forecast_carry["as_of"]) == as_of
            rankings[FORECAST] = forecast_carry.loc[at, [*MARKET_KEY, "rate_8h"]]
        for ranking, quotes in rankings.items():
            listed_quotes = quotes.merge(listed[MARKET_KEY], on=MARKET_KEY)
            tradable = quotes.merge(liquid, on=MARKET_KEY)
            excluded["outside_universe"] += len(quotes) - len(listed_quotes)
            excluded["below_liquidity_floors"] += len(listed_quotes) - len(tradable)
            parts.append(best_pairs(tradable, costs).assign(as_of=as_of, ranking=ranking))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ARBITRAGE_COLUMNS)
    return ArbitrageTable(rows[ARBITRAGE_COLUMNS].reset_index(drop=True), excluded)


def best_pairs(quotes: pd.DataFrame, costs: ArbitrageCosts) -> pd.DataFrame:
    """Per base, the (long, short) pair on two different venues with the highest net APR (ties: by venue names)."""
    require_columns(quotes, [*MARKET_KEY, "base", "rate_8h"], "quotes")
    if not np.isfinite(quotes["rate_8h"].to_numpy(dtype="float64")).all():
        raise SchemaError("quotes: NaN or infinite rate_8h")
    legs = quotes[[*MARKET_KEY, "base", "rate_8h"]].assign(fee=costs.fee(quotes["venue"]))
    pairs = legs.merge(legs, on="base", suffixes=("_long", "_short"))
    pairs = pairs.loc[pairs["venue_long"] != pairs["venue_short"]]
    spread = pairs["rate_8h_short"].to_numpy() - pairs["rate_8h_long"].to_numpy()
    fee_apr = costs.fee_apr(pairs["fee_long"].to_numpy(), pairs["fee_short"].to_numpy())
    table = pd.DataFrame(
        {
            "base": pairs["base"].to_numpy(),
            "long_venue": pairs["venue_long"].to_numpy(),
            "long_symbol": pairs["symbol_long"].to_numpy(),
            "short_venue": pairs["venue_short"].to_numpy(),
            "short_symbol": pairs["symbol_short"].to_numpy(),
            "long_rate_8h": pairs["rate_8h_long"].to_numpy(),
            "short_rate_8h": pairs["rate_8h_short"].to_numpy(),
            "spread_8h": spread,
            "gross_apr": spread * APR_PER_8H,
            "fee_apr": fee_apr,
            "net_apr": spread * APR_PER_8H - fee_apr,
        }
    )
    table = table.sort_values(
        ["base", "net_apr", "long_venue", "short_venue", "long_symbol", "short_symbol"],
        ascending=[True, False, True, True, True, True],
        kind="stable",
    )
    best = table.drop_duplicates("base", keep="first")
    counts = legs.groupby("base").agg(n_markets=("symbol", "size"), n_venues=("venue", "nunique"))
    return best.merge(counts, left_on="base", right_index=True).reset_index(drop=True)


def _utc(times: pd.Series) -> pd.Series:
    """Times as tz-aware UTC nanoseconds, parsed only when they are not already (parsing scans every value)."""
    return times if times.dtype == "datetime64[ns, UTC]" else to_utc(times)
