"""Market features from hourly bars: returns, volatility, RSI, MFI, EMA ratio, basis, OI change.

Every input is scattered once into an (hour x stream) grid; smoothed and windowed inputs are
computed on the whole grid in one pass, ratios only at the cells the feature rows ask for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.features.streams import CurveStreams
from fund_pipeline.domain.prints import SchemaError, require_columns
from fund_pipeline.domain.time import NS_PER_HOUR, time_ns

MARKET_FEATURES = [
    "ret_1h",
    "ret_24h",
    "realised_vol_24h",
    "rsi_14",
    "mfi_14",
    "ema_ratio_12_48",
    "basis",
    "oi_change_24h",
]
# Whether the stream has any hourly bars at all: market features are only expected where it does.
BARS_FLAG = "has_bars"
BAR_VALUE_COLUMNS = ["high", "low", "close", "volume_usd", "spot_close", "open_interest_usd"]
BAR_INPUT_COLUMNS = ["venue", "symbol", "base", "ts", *BAR_VALUE_COLUMNS]


def market_features(
    bars: pd.DataFrame | None, streams: CurveStreams, stream: np.ndarray, funding_ns: np.ndarray
) -> dict:
    """MARKET_FEATURES and BARS_FLAG of each row, from its stream's last hourly bar closed by its funding_time."""
    out = {name: np.full(len(stream), np.nan) for name in MARKET_FEATURES}
    out[BARS_FLAG] = np.zeros(len(stream), dtype=bool)
    if bars is None or bars.empty or not len(stream):
        return out
    require_columns(bars, BAR_INPUT_COLUMNS, "hourly bars")
    open_ns = time_ns(bars["ts"])
    off_hour = open_ns % NS_PER_HOUR != 0
    if off_hour.any():
        sample = bars.loc[off_hour, ["venue", "symbol", "ts"]].head(3).to_dict("records")
        raise SchemaError(f"hourly bars: ts must be the bar open on the hour, e.g. {sample}")
    bar_stream = streams.code(bars["venue"], bars["symbol"])
    has_bars = np.bincount(bar_stream[bar_stream >= 0], minlength=len(streams)) > 0
    out[BARS_FLAG] = has_bars[stream]
    if not has_bars.any():
        return out
    wide, first_hour = _hourly_wide(bars, bar_stream, open_ns // NS_PER_HOUR, len(streams))
    last_open = funding_ns // NS_PER_HOUR - 1 - first_hour
    usable = has_bars[stream] & (last_open >= 0) & (last_open < len(wide["close"]))
    for name, values in _market_features_at(wide, last_open[usable], stream[usable]).items():
        out[name][usable] = values
    return out


def _hourly_wide(bars: pd.DataFrame, stream: np.ndarray, hour: np.ndarray, n_streams: int) -> tuple[dict, int]:
    """Bar columns scattered into (hour x stream) arrays on one complete grid, and the grid's first hour.

    Missing bars are NaN; of a bar sent twice the last row counts. Rows of streams without curves
    (code -1) are left out. Duplicates are looked for with one scatter; the slower unbuffered
    `maximum.at` runs only when there are some.
    """
    rows = np.flatnonzero(stream >= 0)
    first_hour = int(hour[rows].min())
    n_hours = int(hour[rows].max()) - first_hour + 1
    cell = (hour[rows] - first_hour) * n_streams + stream[rows]
    position = np.arange(len(rows))
    last_row = np.full(n_hours * n_streams, -1)
    last_row[cell] = position
    if not np.array_equal(last_row[cell], position):
        np.maximum.at(last_row, cell, position)
        is_last = last_row[cell] == position
        rows, cell = rows[is_last], cell[is_last]
    wide = {}
    for name in BAR_VALUE_COLUMNS:
        grid = np.full(n_hours * n_streams, np.nan)
        values = bars[name].to_numpy(dtype="float64", na_value=np.nan)
        grid[cell] = values if len(rows) == len(values) else values[rows]
        wide[name] = grid.reshape(n_hours, n_streams)
    return wide, first_hour


def _market_features_at(wide: dict[str, np.ndarray], hour: np.ndarray, column: np.ndarray) -> dict[str, np.ndarray]:
    """MARKET_FEATURES at grid cells (hour, stream column), each using bars up to and including that hour.

    Only the smoothed and windowed inputs are computed on the whole (hour x stream) grid, each in one
    pass over all streams; ratios are taken at the requested cells only.
    """
    close, high, low = wide["close"], wide["high"], wide["low"]
    n_streams = close.shape[1]

    cell = hour * n_streams + column

    def at(grid: np.ndarray, lag: int = 0) -> np.ndarray:
        if not lag:
            return grid.reshape(-1)[cell]
        inside = hour >= lag
        return np.where(inside, grid.reshape(-1)[np.where(inside, cell - lag * n_streams, 0)], np.nan)

    def observations_at(values: np.ndarray) -> np.ndarray:
        return at(np.cumsum(~np.isnan(values), axis=0, dtype=np.int32))

    with np.errstate(divide="ignore", invalid="ignore"):
        change = close - _shift(close, 1)
        # Gains and losses are observed at the same hours, so their EMAs share one weight, which cancels in RSI.
        # fmax reads a missing change as 0, which is how the decayed sums skip it.
        gain_sum, loss_sum = (
            at(decayed_sum(np.fmax(change, 0.0), 1 / 14)),
            at(decayed_sum(np.fmax(-change, 0.0), 1 / 14)),
        )
        rsi = np.where(observations_at(change) >= 14, 100.0 * gain_sum / (gain_sum + loss_sum), np.nan)
        observed_close = ~np.isnan(close)
        close_filled, close_weight = np.where(observed_close, close, 0.0), observed_close.astype("float64")
        fast = at(decayed_sum(close_filled, 2 / 13)) / at(decayed_sum(close_weight, 2 / 13))
        slow = at(decayed_sum(close_filled, 2 / 49)) / at(decayed_sum(close_weight, 2 / 49))
        ema_ratio = np.where(observations_at(close) >= 48, fast / slow, np.nan)
        typical = (high + low + close) / 3.0
        typical_change = typical - _shift(typical, 1)
        flow = wide["volume_usd"]
        known = ~np.isnan(typical_change)
        positive = np.where(known, np.where(typical_change > 0, flow, 0.0), np.nan)
        negative = np.where(known, np.where(typical_change < 0, flow, 0.0), np.nan)
        positive_sum = at(rolling_sum(positive, 14, 14))
        negative_sum = at(rolling_sum(negative, 14, 14))
        square_sum, square_count = rolling_sum_and_count(np.log(close / _shift(close, 1)) ** 2, 24, 20)
        mean_square = at(square_sum / square_count)
        close_now, open_interest = at(close), at(wide["open_interest_usd"])
        features = {
            "ret_1h": close_now / at(close, 1) - 1.0,
            "ret_24h": close_now / at(close, 24) - 1.0,
            "realised_vol_24h": np.sqrt(mean_square * 24.0),
            "rsi_14": rsi,
            "mfi_14": 100.0 * positive_sum / (positive_sum + negative_sum),
            "ema_ratio_12_48": ema_ratio,
            "basis": close_now / at(wide["spot_close"]) - 1.0,
            "oi_change_24h": open_interest / at(wide["open_interest_usd"], 24) - 1.0,
        }
    return {name: np.where(np.isinf(values), np.nan, values) for name, values in features.items()}


def decayed_sum(values: np.ndarray, alpha: float) -> np.ndarray:
    """Sum of each column's values up to each row, weighted (1 - alpha) ** age; pass missing values as 0.

    `DataFrame.ewm(alpha=alpha, min_periods=m).mean()` (adjusted, NaN kept in place) is this sum of the
    values over this sum of the observation indicator, where m values have been observed; `lfilter`
    runs the recursion down all columns in one call (imported here: scipy.signal costs ~2 s to import,
    which every process that only loads the definitions would pay).
    """
    from scipy.signal import lfilter

    return lfilter([1.0], [1.0, alpha - 1.0], values, axis=0)


def rolling_sum(values: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """`DataFrame.rolling(window, min_periods).sum()` of every column in one pass."""
    return rolling_sum_and_count(values, window, min_periods)[0]


def rolling_sum_and_count(values: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """`rolling_sum`, and the number of observed rows in each window.

    The window sum is built from sums over power-of-two spans (a few whole-grid additions), so every
    value is a direct sum of its window rather than a running total's difference. NaN where fewer
    than `min_periods` of the window's rows are observed.
    """
    observed = ~np.isnan(values)
    span = np.where(observed, values, 0.0)
    # Spans are doubled into a second buffer and the two swapped: grid-sized temporaries cost page faults.
    spare, total = np.empty_like(span), np.zeros_like(span)
    covered, span_rows, remaining = 0, 1, window
    while remaining:
        if remaining & 1:
            total[covered:] += span[: max(len(span) - covered, 0)]
            covered += span_rows
        remaining >>= 1
        if remaining:
            spare[:span_rows] = span[:span_rows]
            np.add(span[span_rows:], span[: max(len(span) - span_rows, 0)], out=spare[span_rows:])
            span, spare = spare, span
            span_rows *= 2
    seen = np.cumsum(observed, axis=0, dtype=np.int32)
    count = seen.copy()
    count[window:] -= seen[: max(len(seen) - window, 0)]
    total[count < min_periods] = np.nan
    return total, count


def _shift(values: np.ndarray, hours: int) -> np.ndarray:
    """`DataFrame.shift(hours)` of an (hour x stream) array: the value `hours` rows earlier, NaN before the grid."""
    out = np.full_like(values, np.nan)
    out[hours:] = values[: max(len(values) - hours, 0)]
    return out
