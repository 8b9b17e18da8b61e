"""Market-wide funding aggregates: OI-weighted funding per base asset and cumulative funding.

Venues settle on different intervals (1h, 4h, 8h), so rates are normalised to 8h before they
are averaged, and cumulative funding is taken over calendar windows, not a count of prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.prints import SchemaError, invalid_rate_rows, rate_to_8h, require_columns
from fund_pipeline.domain.time import aware_utc, to_utc

PRINT_INPUT_COLUMNS = ["venue", "symbol", "base", "kind", "funding_time", "ts", "rate", "interval_h"]
BAR_INPUT_COLUMNS = ["venue", "symbol", "base", "ts", "open_interest_usd"]
MARKET_KEY = ["venue", "symbol"]

# Periods expressed as multiples of the 8h rate (simple, not compounded).
PERIODS_PER_8H = {"afr_8h": 1, "afr_1d": 3, "afr_30d": 90, "afr_1y": 1095}
AFR_COLUMNS = [
    "ts",
    "base",
    *PERIODS_PER_8H,
    "n_venues",
    "n_markets",
    "n_missing_oi",
    "n_missing_rate",
    "total_oi_usd",
]
CUMULATIVE_WINDOWS = {"cum_1d": "1D", "cum_7d": "7D", "cum_30d": "30D"}
CUMULATIVE_COLUMNS = ["venue", "symbol", "base", "funding_time", *CUMULATIVE_WINDOWS]

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
    """Hourly OI-weighted 8h funding per base asset over [start, end): AFR = Σ OI·FR_8h / Σ OI.

    For each hour ts (bar open) and venue × symbol, FR_8h is the latest settled rate with
    funding_time ≤ ts (known at ts), normalised to 8h, and OI the open_interest_usd of that
    hour's bar. A market contributes only with both; one with a rate but no positive OI is
    counted in n_missing_oi, one with OI but no fresh rate in n_missing_rate, and neither is
    weighted in. afr_8h is NaN for an hour where nothing contributes. total_oi_usd is the OI
    of the contributing markets; n_venues counts distinct contributing venues, n_markets
    contributing venue × symbol pairs.
    """
    require_columns(bars, BAR_INPUT_COLUMNS, "market bars")
    start, end = _hour_bounds(start, end)
    hours = pd.DataFrame({"ts": pd.date_range(start, end, freq="h", inclusive="left")})
    rates = _settled_rates(prints)
    oi = _hourly_open_interest(bars, start, end)
    markets = _markets(rates, oi)
    if markets.empty or hours.empty:
        counts = {c: "int64" for c in AFR_COLUMNS if c.startswith("n_")}
        return _empty(AFR_COLUMNS, {"ts": "datetime64[ns, UTC]", "base": "object", **counts})

    panel = markets.merge(hours, how="cross").sort_values("ts", kind="stable")
    panel = pd.merge_asof(
        panel,
        rates[[*MARKET_KEY, "funding_time", "interval_h", "rate_8h"]].sort_values("funding_time", kind="stable"),
        left_on="ts",
        right_on="funding_time",
        by=MARKET_KEY,
        direction="backward",
    )
    age_h = (panel["ts"] - panel["funding_time"]) / pd.Timedelta(hours=1)
    fresh = age_h < max_rate_age_intervals * panel["interval_h"]
    panel = panel.merge(oi[[*MARKET_KEY, "ts", "open_interest_usd"]], on=[*MARKET_KEY, "ts"], how="left")

    has_rate = (fresh & panel["rate_8h"].notna()).to_numpy()
    has_oi = (panel["open_interest_usd"] > 0).to_numpy()
    live = has_rate | has_oi
    contributing = has_rate & has_oi
    weight = np.where(contributing, panel["open_interest_usd"].to_numpy(dtype="float64"), 0.0)
    parts = pd.DataFrame(
        {
            "ts": panel["ts"],
            "base": panel["base"],
            "weighted_rate": np.where(contributing, weight * panel["rate_8h"].to_numpy(dtype="float64"), 0.0),
            "total_oi_usd": weight,
            "venue": panel["venue"].where(contributing),
            "n_markets": contributing.astype("int64"),
            "n_missing_oi": (has_rate & ~has_oi).astype("int64"),
            "n_missing_rate": (has_oi & ~has_rate).astype("int64"),
        }
    ).loc[live]

    out = parts.groupby(["ts", "base"], sort=True).agg(
        weighted_rate=("weighted_rate", "sum"),
        total_oi_usd=("total_oi_usd", "sum"),
        n_venues=("venue", "nunique"),
        n_markets=("n_markets", "sum"),
        n_missing_oi=("n_missing_oi", "sum"),
        n_missing_rate=("n_missing_rate", "sum"),
    )
    total = out["total_oi_usd"].to_numpy()
    afr_8h = np.divide(out["weighted_rate"].to_numpy(), total, out=np.full(len(out), np.nan), where=total > 0)
    for column, multiple in PERIODS_PER_8H.items():
        out[column] = afr_8h * multiple
    return out.reset_index()[AFR_COLUMNS]


def cumulative_funding_rate(prints: pd.DataFrame, start, end) -> pd.DataFrame:
    """Trailing compounded funding Π(1 + r_i) − 1 per venue × symbol at each settled funding_time in [start, end).

    Windows are calendar spans ending at the print, (t − 1d, t], (t − 7d, t], (t − 30d, t],
    so an hourly venue compounds 24 prints a day and an 8h venue 3. Prints before `start`
    are used as look-back: pass 30 days of them for complete 30d values.
    """
    start, end = _time_bounds(start, end)
    rates = _settled_rates(prints)
    rates = rates.loc[rates["funding_time"] < end]
    if (rates["rate"] <= -1.0).any():
        bad = rates.loc[rates["rate"] <= -1.0].head(3)[[*MARKET_KEY, "funding_time", "rate"]].to_dict("records")
        raise SchemaError(f"funding prints: rate ≤ -100% cannot be compounded, e.g. {bad}")
    if rates.empty:
        return _empty(
            CUMULATIVE_COLUMNS,
            {"funding_time": "datetime64[ns, UTC]", "venue": "object", "symbol": "object", "base": "object"},
        )

    rates = rates.sort_values([*MARKET_KEY, "funding_time"], kind="stable").reset_index(drop=True)
    rates["log_growth"] = np.log1p(rates["rate"].to_numpy(dtype="float64"))
    # rows are contiguous per market and in time order, so the grouped result lines up row for row
    grouped = rates.groupby(MARKET_KEY, sort=False)
    for column, window in CUMULATIVE_WINDOWS.items():
        log_sum = grouped.rolling(window, on="funding_time", closed="right")["log_growth"].sum()
        rates[column] = np.expm1(log_sum.to_numpy())
    in_range = rates["funding_time"] >= start
    return rates.loc[in_range, CUMULATIVE_COLUMNS].reset_index(drop=True)


def venue_day_rate_8h(prints: pd.DataFrame) -> pd.DataFrame:
    """Mean 8h-normalised settled rate per venue and UTC day, in basis points: (venue × day) matrix."""
    rates = _settled_rates(prints)
    rates["day"] = rates["funding_time"].dt.floor("D")
    bps = rates.groupby(["venue", "day"])["rate_8h"].mean() * 1e4
    return bps.unstack("day").sort_index()


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


def _hourly_open_interest(bars: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    oi = bars[BAR_INPUT_COLUMNS].copy()
    oi["ts"] = to_utc(oi["ts"])
    oi = oi.loc[(oi["ts"] >= start) & (oi["ts"] < end)]
    oi["open_interest_usd"] = pd.to_numeric(oi["open_interest_usd"], errors="coerce").astype("float64")
    if (oi["open_interest_usd"] < 0).any():
        bad = oi.loc[oi["open_interest_usd"] < 0].head(3)[[*MARKET_KEY, "ts", "open_interest_usd"]].to_dict("records")
        raise SchemaError(f"market bars: negative open_interest_usd, e.g. {bad}")
    duplicated = oi.duplicated([*MARKET_KEY, "ts"], keep=False)
    if duplicated.any():
        bad = oi.loc[duplicated].head(3)[[*MARKET_KEY, "ts"]].to_dict("records")
        raise SchemaError(f"market bars: {int(duplicated.sum())} rows share a (venue, symbol, ts), e.g. {bad}")
    return oi.reset_index(drop=True)


def _markets(rates: pd.DataFrame, oi: pd.DataFrame) -> pd.DataFrame:
    markets = pd.concat([rates[[*MARKET_KEY, "base"]], oi[[*MARKET_KEY, "base"]]]).drop_duplicates()
    conflicting = markets.duplicated(MARKET_KEY, keep=False)
    if conflicting.any():
        bad = markets.loc[conflicting].head(4).to_dict("records")
        raise SchemaError(f"prints and bars disagree on the base asset of a market, e.g. {bad}")
    return markets.reset_index(drop=True)


def _time_bounds(start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    first, last = aware_utc(start, "start").as_unit("ns"), aware_utc(end, "end").as_unit("ns")
    if not first < last:
        raise ValueError(f"start {first} must be before end {last}")
    return first, last


def _hour_bounds(start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    start, end = _time_bounds(start, end)
    for name, ts in (("start", start), ("end", end)):
        if ts != ts.floor("h"):
            raise ValueError(f"{name} must be on the hour for hourly aggregates, got {ts}")
    return start, end


def _empty(columns: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "float64")) for c in columns})
