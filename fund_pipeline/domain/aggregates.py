"""Market-wide funding aggregates as the data vendors publish them.

Hourly, per base asset across venues (venue `all`) and per venue × base, each split by margin
type (usd_margin, coin_margin and both together, all_margin): the funding rate weighted by open
interest and, as a variant, by trailing 24h volume, in 8h, 1d, 30d and 1y periods; and the
cumulative funding over 1, 7 and 30 days with the same split. Venues settle on different
intervals (1h, 4h, 8h), so rates are normalised to 8h (`rate_to_8h`) before they are averaged,
and cumulative funding compounds the prints of calendar windows, not a count of prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.contracts import ALL_MARGIN, margin_types, open_interest_usd
from fund_pipeline.domain.prints import SchemaError, invalid_rate_rows, rate_to_8h, require_columns
from fund_pipeline.domain.time import aware_utc, to_utc

PRINT_INPUT_COLUMNS = ["venue", "symbol", "base", "kind", "funding_time", "ts", "rate", "interval_h"]
BAR_INPUT_COLUMNS = ["venue", "symbol", "base", "ts", "close", "volume_usd", "open_interest_usd"]
MARKET_KEY = ["venue", "symbol"]
GROUP_KEY = ["ts", "venue", "base", "margin"]
# The venue of an aggregate over every venue of a base asset.
ALL_VENUES = "all"

OI_WEIGHTED, VOLUME_WEIGHTED = "oi", "volume"
# The market-hour column each weighting weights by.
WEIGHT_COLUMNS = {OI_WEIGHTED: "oi_usd", VOLUME_WEIGHTED: "volume_24h_usd"}
# Volume weights are the USD volume of the 24 hourly bars that closed by the hour (all of them).
VOLUME_WINDOW_BARS = 24
VOLUME_LOOKBACK = pd.Timedelta(hours=VOLUME_WINDOW_BARS)

# Periods expressed as multiples of the 8h rate (simple, not compounded): 3 a day, 1095 a year.
PERIODS_PER_8H = {"afr_8h": 1, "afr_1d": 3, "afr_30d": 90, "afr_1y": 1095}
COUNT_COLUMNS = ["n_venues", "n_markets", "n_missing_weight", "n_missing_rate"]
AFR_COLUMNS = [*GROUP_KEY, "weighting", *PERIODS_PER_8H, *COUNT_COLUMNS, "total_weight_usd"]
CUMULATIVE_WINDOWS = {"cum_1d": pd.Timedelta(days=1), "cum_7d": pd.Timedelta(days=7), "cum_30d": pd.Timedelta(days=30)}
CUMULATIVE_LOOKBACK = max(CUMULATIVE_WINDOWS.values())
CUMULATIVE_COLUMNS = [*GROUP_KEY, *CUMULATIVE_WINDOWS, *COUNT_COLUMNS, "total_weight_usd"]

# A settled rate older than this many of its own intervals is stale (the market stopped
# printing) and no longer counts; 3 tolerates two missing windows in a row.
MAX_RATE_AGE_INTERVALS = 3.0


def aggregate_funding_rate(
    prints: pd.DataFrame,
    bars: pd.DataFrame,
    start,
    end,
    max_rate_age_intervals: float = MAX_RATE_AGE_INTERVALS,
) -> pd.DataFrame:
    """Hourly weighted 8h funding over [start, end): AFR = Σ w·FR_8h / Σ w per (ts, venue, base, margin, weighting).

    For each hour ts (bar open) and venue × symbol, FR_8h is the latest settled rate with
    funding_time ≤ ts (known at ts), normalised to 8h; w is the USD open interest of that hour's
    bar (`contracts.open_interest_usd`) for `oi`, the USD volume of the 24 bars before ts for
    `volume` (pass bars from start − 24h). Groups are each venue and `all` venues, each margin
    type and `all_margin`. A market with a rate but no positive weight is counted in
    n_missing_weight, one with a weight but no fresh rate in n_missing_rate; neither is weighted
    in, and a group where nothing contributes has NaN rates. total_weight_usd sums the
    contributing weights; n_venues counts distinct contributing venues, n_markets venue × symbol pairs.
    """
    start, end = _hour_bounds(start, end)
    panel = _market_hours(prints, bars, start, end, max_rate_age_intervals)
    if panel.empty:
        return _empty(AFR_COLUMNS)
    parts = []
    for weighting, weight in WEIGHT_COLUMNS.items():
        means = _weighted_means(panel, weight, ["rate_8h"])
        for column, multiple in PERIODS_PER_8H.items():
            means[column] = means["rate_8h"] * multiple
        parts.append(means.assign(weighting=weighting))
    return pd.concat(parts, ignore_index=True)[AFR_COLUMNS]


def cumulative_funding_rate(
    prints: pd.DataFrame,
    bars: pd.DataFrame,
    start,
    end,
    max_rate_age_intervals: float = MAX_RATE_AGE_INTERVALS,
) -> pd.DataFrame:
    """Hourly cumulative funding over [start, end), OI-weighted per (ts, venue, base, margin).

    A market's cumulative funding at ts over a window W is Π(1 + r_i) − 1 of its settled prints
    with funding_time in (ts − W, ts], W = 1, 7 and 30 calendar days, so an hourly venue
    compounds 24 prints a day and an 8h venue 3. A group's value is the open-interest-weighted
    mean of its markets' values: what a position spread over them in proportion to OI was paid
    (longs pay when positive). Markets count as in `aggregate_funding_rate` (a fresh rate and a
    positive OI). Pass prints from start − 30 days for complete 30d values.
    """
    start, end = _hour_bounds(start, end)
    panel = _market_hours(prints, bars, start, end, max_rate_age_intervals, compound=True)
    if panel.empty:
        return _empty(CUMULATIVE_COLUMNS)
    return _weighted_means(panel, WEIGHT_COLUMNS[OI_WEIGHTED], list(CUMULATIVE_WINDOWS))[CUMULATIVE_COLUMNS]


def venue_day_rate_8h(prints: pd.DataFrame) -> pd.DataFrame:
    """Mean 8h-normalised settled rate per venue and UTC day, in basis points: (venue × day) matrix."""
    rates = _settled_rates(prints)
    rates["day"] = rates["funding_time"].dt.floor("D")
    bps = rates.groupby(["venue", "day"])["rate_8h"].mean() * 1e4
    return bps.unstack("day").sort_index()


def _market_hours(
    prints: pd.DataFrame,
    bars: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    max_rate_age_intervals: float,
    compound: bool = False,
) -> pd.DataFrame:
    """One row per market × hour of [start, end): margin, latest fresh rate_8h (NaN when none), oi_usd and
    volume_24h_usd; with `compound`, the market's cumulative funding per window (NaN without a fresh rate)."""
    rates = _settled_rates(prints)
    if compound:
        rates = _with_log_growth(rates.loc[rates["funding_time"] < end])
    hourly = _hourly_bars(bars, end)
    markets = _markets(rates, hourly)
    hours = pd.DataFrame({"ts": pd.date_range(start, end, freq="h", inclusive="left")})
    if markets.empty or hours.empty:
        return pd.DataFrame()
    panel = markets.merge(hours, how="cross").sort_values("ts", kind="stable")
    carried = ["funding_time", "interval_h", "rate_8h", *(["log_growth_sum"] if compound else [])]
    panel = pd.merge_asof(
        panel,
        rates[[*MARKET_KEY, *carried]].sort_values("funding_time", kind="stable"),
        left_on="ts",
        right_on="funding_time",
        by=MARKET_KEY,
        direction="backward",
    )
    age_h = (panel["ts"] - panel["funding_time"]) / pd.Timedelta(hours=1)
    fresh = (age_h < max_rate_age_intervals * panel["interval_h"]) & panel["rate_8h"].notna()
    panel["rate_8h"] = panel["rate_8h"].where(fresh)
    if compound:
        for column, window in CUMULATIVE_WINDOWS.items():
            earlier = _log_growth_at(rates, panel[[*MARKET_KEY, "ts"]], window)
            compounded = np.expm1(panel["log_growth_sum"].to_numpy(dtype="float64") - earlier)
            panel[column] = pd.Series(compounded, index=panel.index).where(fresh)
    weights = hourly.loc[hourly["ts"] >= start, [*MARKET_KEY, "ts", "oi_usd", "volume_24h_usd"]]
    panel = panel.merge(weights, on=[*MARKET_KEY, "ts"], how="left")
    panel["margin"] = margin_types(panel["symbol"])
    return panel.reset_index(drop=True)


def _weighted_means(panel: pd.DataFrame, weight: str, values: list[str]) -> pd.DataFrame:
    """Σ w·v / Σ w of each value column per GROUP_KEY, over each venue and `all`, each margin type and
    `all_margin`, with the counts; a market has a value when the first value column is known.

    Sums add up, so the coarser groups are sums of the per venue × margin ones; n_venues counts the
    finer groups with a contributing market."""
    has_value = panel[values[0]].notna().to_numpy()
    has_weight = (panel[weight] > 0).to_numpy()
    contributing = has_value & has_weight
    w = np.where(contributing, panel[weight].to_numpy(dtype="float64"), 0.0)
    sums = {
        "total_weight_usd": w,
        "n_markets": contributing.astype("int64"),
        "n_missing_weight": (has_value & ~has_weight).astype("int64"),
        "n_missing_rate": (has_weight & ~has_value).astype("int64"),
        **{f"weighted_{c}": np.where(contributing, w * panel[c].to_numpy(dtype="float64"), 0.0) for c in values},
    }
    parts = pd.DataFrame({**{c: panel[c] for c in GROUP_KEY}, **sums}).loc[has_value | has_weight]
    by_venue = parts.groupby(GROUP_KEY, sort=False).sum()
    by_venue_all_margin = by_venue.groupby(["ts", "venue", "base"], sort=False).sum()
    for level in (by_venue, by_venue_all_margin):
        level["n_venues"] = (level["n_markets"] > 0).astype("int64")
    all_venues = by_venue.groupby(["ts", "base", "margin"], sort=False).sum()
    all_venues_all_margin = by_venue_all_margin.groupby(["ts", "base"], sort=False).sum()
    out = pd.concat(
        [
            by_venue.reset_index(),
            by_venue_all_margin.reset_index().assign(margin=ALL_MARGIN),
            all_venues.reset_index().assign(venue=ALL_VENUES),
            all_venues_all_margin.reset_index().assign(venue=ALL_VENUES, margin=ALL_MARGIN),
        ],
        ignore_index=True,
    )
    total = out["total_weight_usd"].to_numpy()
    for column in values:
        out[column] = np.divide(
            out[f"weighted_{column}"].to_numpy(), total, out=np.full(len(out), np.nan), where=total > 0
        )
    out = out.sort_values(GROUP_KEY, kind="stable").reset_index(drop=True)
    return out[[*GROUP_KEY, *COUNT_COLUMNS, "total_weight_usd", *values]]


def _settled_rates(prints: pd.DataFrame) -> pd.DataFrame:
    """Settled prints, one per window (the latest revision by ts), with their 8h-normalised rate."""
    require_columns(prints, PRINT_INPUT_COLUMNS, "funding prints")
    settled = prints.loc[prints["kind"] == "settled", PRINT_INPUT_COLUMNS].copy()
    unnamed = settled[["venue", "symbol", "base"]].isna().any(axis=1)
    if unnamed.any():
        raise SchemaError(f"funding prints: {int(unnamed.sum())} settled row(s) without venue, symbol or base")
    bad = invalid_rate_rows(settled)
    if len(bad):
        sample = bad.head(3)[[*MARKET_KEY, "funding_time", "rate", "interval_h"]].to_dict("records")
        raise SchemaError(
            f"funding prints: {len(bad)} settled row(s) with NaN/infinite rate or bad interval, e.g. {sample}"
        )
    settled["funding_time"] = to_utc(settled["funding_time"])
    settled["ts"] = to_utc(settled["ts"])
    settled = settled.sort_values([*MARKET_KEY, "funding_time", "ts"], kind="stable")
    settled = settled.drop_duplicates([*MARKET_KEY, "funding_time"], keep="last")
    settled["rate_8h"] = rate_to_8h(settled["rate"], settled["interval_h"])
    return settled.reset_index(drop=True)


def _with_log_growth(rates: pd.DataFrame) -> pd.DataFrame:
    """Each market's running Σ log(1 + r) through every print, in time order: windows are differences of it."""
    if (rates["rate"] <= -1.0).any():
        bad = rates.loc[rates["rate"] <= -1.0].head(3)[[*MARKET_KEY, "funding_time", "rate"]].to_dict("records")
        raise SchemaError(f"funding prints: rate ≤ -100% cannot be compounded, e.g. {bad}")
    out = rates.sort_values([*MARKET_KEY, "funding_time"], kind="stable").reset_index(drop=True)
    out["log_growth_sum"] = (
        pd.Series(np.log1p(out["rate"].to_numpy(dtype="float64")))
        .groupby([out["venue"], out["symbol"]], sort=False)
        .cumsum()
    )
    return out


def _log_growth_at(rates: pd.DataFrame, at: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    """Each row's market running Σ log(1 + r) through its last print at or before ts − window (0 before any)."""
    probe = at.assign(t=at["ts"] - window, row=np.arange(len(at))).sort_values("t", kind="stable")
    found = pd.merge_asof(
        probe,
        rates[[*MARKET_KEY, "funding_time", "log_growth_sum"]].sort_values("funding_time", kind="stable"),
        left_on="t",
        right_on="funding_time",
        by=MARKET_KEY,
        direction="backward",
    )
    values = np.empty(len(at))
    values[found["row"].to_numpy()] = found["log_growth_sum"].fillna(0.0).to_numpy()
    return values


def _hourly_bars(bars: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Bars opening before `end`, validated, with their USD open interest and trailing 24h volume."""
    require_columns(bars, BAR_INPUT_COLUMNS, "market bars")
    out = bars.copy()
    out["ts"] = to_utc(out["ts"])
    out = out.loc[out["ts"] < end].reset_index(drop=True)
    for column in ("close", "volume_usd", "open_interest_usd"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    if (out["volume_usd"] < 0).any():
        bad = out.loc[out["volume_usd"] < 0].head(3)[[*MARKET_KEY, "ts", "volume_usd"]].to_dict("records")
        raise SchemaError(f"market bars: negative volume_usd, e.g. {bad}")
    duplicated = out.duplicated([*MARKET_KEY, "ts"], keep=False)
    if duplicated.any():
        bad = out.loc[duplicated].head(3)[[*MARKET_KEY, "ts"]].to_dict("records")
        raise SchemaError(f"market bars: {int(duplicated.sum())} rows share a (venue, symbol, ts), e.g. {bad}")
    out["oi_usd"] = open_interest_usd(out)
    out["volume_24h_usd"] = _trailing_volume(out)
    return out


def _trailing_volume(bars: pd.DataFrame) -> np.ndarray:
    """USD volume of each market's VOLUME_WINDOW_BARS hourly bars before each bar; NaN unless all are there."""
    if bars.empty:
        return np.empty(0)
    hour = bars["ts"].dt.floor("h")
    grid = pd.date_range(hour.min(), hour.max(), freq="h")
    wide = bars.assign(ts=hour).pivot(index="ts", columns=MARKET_KEY, values="volume_usd").reindex(grid)
    trailing = wide.rolling(VOLUME_WINDOW_BARS, min_periods=VOLUME_WINDOW_BARS).sum().shift(1)
    codes = pd.MultiIndex.from_frame(bars[MARKET_KEY])
    rows, cols = grid.get_indexer(hour), trailing.columns.get_indexer(codes)
    return trailing.to_numpy(dtype="float64")[rows, cols]


def _markets(rates: pd.DataFrame, bars: pd.DataFrame) -> pd.DataFrame:
    markets = pd.concat([rates[[*MARKET_KEY, "base"]], bars[[*MARKET_KEY, "base"]]]).drop_duplicates()
    conflicting = markets.duplicated(MARKET_KEY, keep=False)
    if conflicting.any():
        bad = markets.loc[conflicting].head(4).to_dict("records")
        raise SchemaError(f"prints and bars disagree on the base asset of a market, e.g. {bad}")
    return markets.reset_index(drop=True)


def _hour_bounds(start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    first, last = aware_utc(start, "start").as_unit("ns"), aware_utc(end, "end").as_unit("ns")
    if not first < last:
        raise ValueError(f"start {first} must be before end {last}")
    for name, ts in (("start", first), ("end", last)):
        if ts != ts.floor("h"):
            raise ValueError(f"{name} must be on the hour for hourly aggregates, got {ts}")
    return first, last


def _empty(columns: list[str]) -> pd.DataFrame:
    dtypes = {"ts": "datetime64[ns, UTC]", "venue": "object", "base": "object", "margin": "object"}
    dtypes |= {"weighting": "object"} | {c: "int64" for c in COUNT_COLUMNS}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float64")) for c in columns})
