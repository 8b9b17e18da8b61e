"""Forecast horizons, their realised targets, the trader baselines and the data's mass points.

Every horizon is forecast in one unit, `y`: the mean 8h-equivalent rate over the horizon's
windows, so 1h, 4h and 8h venues share a model. The realised value a fund books is the funding
accrued over the horizon in the symbol's own windows: the next window's rate, or the sum of the
rates of the windows settling in (T, T + 1, 3, 7 days]. `to_accrued` converts between them.

A row's inputs are its own window and earlier ones of its stream (venue, symbol), and the windows
the base's other streams settled at or before its funding_time (`cross_venue_features`): the EWMA
runs over past rows only, the AR(1) is fitted on training rows only, and mass points are found from
training rows only, so every baseline shares the model's information time.

Mass points: settled rates sit exactly on a few values for long stretches (the interest rate
0.01 %/8h, zero, a cap). They are found from the data as the 8h-equivalent values that hold at
least MASS_MIN_SHARE of a venue's windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fund_pipeline.domain.features.clusters import MASS_POINT_TOL
from fund_pipeline.domain.prints import INTEREST_RATE_8H, SchemaError, rate_to_8h, require_columns
from fund_pipeline.domain.time import NS_PER_HOUR

# Horizon name → hours (None: the next window, whatever its interval).
HORIZONS: dict[str, float | None] = {"next": None, "1d": 24.0, "3d": 72.0, "7d": 168.0}
MAX_HORIZON = pd.Timedelta(hours=max(h for h in HORIZONS.values() if h is not None))
# Forecast inputs a week's first rows need from before it: the EWMA (α = 0.5 forgets 21 windows to
# 5e-7) and the mass-point run length and 21-window share.
FORECAST_INPUT_WARMUP = pd.Timedelta(days=7)
STREAM = ["venue", "symbol"]
FRAME_INPUT_COLUMNS = [
    "venue",
    "symbol",
    "base",
    "funding_time",
    "interval_h",
    "rate",
    "rate_mean_21",
    "target_time",
    "target_rate",
    "target_interval_h",
]
# The measured EWMA: α = 0.5 on past settled rates (BTC/ETH −10 % MAE against the last value).
EWMA_ALPHA = 0.5
# "venue": the venue's own predicted rate of the open window (`with_venue_quotes`), held flat over the horizon.
BASELINES = ("last", "rolling_mean", "ewma", "interest", "ar1", "venue")
# The venue's quote of the open window as an 8h-equivalent rate; NaN where the data has none.
VENUE_QUOTE = "venue_quote_8h"
QUOTE_INPUT_COLUMNS = ["venue", "symbol", "kind", "funding_time", "ts", "rate", "interval_h"]
# A per-stream AR(1) needs this many consecutive training pairs; with fewer it falls back to the last value.
AR1_MIN_PAIRS = 30
AR1_MAX_PHI = 0.999
# A value is a mass point of a venue when at least this share of its training windows sit on it.
MASS_MIN_SHARE = 0.05
MAX_MASS_POINTS = 3
# Rates are quoted to ~8 decimals per interval; grouping the 8h-equivalent at 1e-10 keeps each quote apart.
MASS_DECIMALS = 10
MASS_SHARE_WINDOWS = 21
MASS_FEATURES = ["mass_dist", "on_mass", "mass_run", "mass_share_21"]
# A stream settling at least this often (hours) is an hourly one.
HOURLY_INTERVAL_H = 1.0
# Hours of the hourly venues' rates averaged before T: their latest premium leads the 8h venues' open window.
HOURLY_LOOKBACK_H = (1, 8)
CROSS_VENUE_FEATURES = [
    "cross_venue_8h",
    "cross_venue_gap_8h",
    *(f"hourly_venues_{h}h_{kind}" for h in HOURLY_LOOKBACK_H for kind in ("8h", "gap_8h")),
]


def horizon_hours(horizon: str) -> float | None:
    if horizon not in HORIZONS:
        raise ValueError(f"unknown forecast horizon {horizon!r}; known: {list(HORIZONS)}")
    return HORIZONS[horizon]


def forecast_frame(features: pd.DataFrame) -> pd.DataFrame:
    """Feature rows sorted by stream and time, with `rate_8h`, `ewma_8h`, CROSS_VENUE_FEATURES and,
    per horizon h, `y_<h>` (realised mean 8h rate), `accrued_<h>` (realised funding) and `target_time_<h>`.

    A horizon's target is NaN unless every window of it is among the rows (their intervals add
    up to the horizon): a gap never passes for a quiet spell.
    """
    require_columns(features, FRAME_INPUT_COLUMNS, "forecast features")
    frame = features.sort_values([*STREAM, "funding_time"], kind="stable").reset_index(drop=True)
    if frame.duplicated([*STREAM, "funding_time"]).any():
        raise SchemaError("forecast features: duplicate (venue, symbol, funding_time) rows")
    frame["rate_8h"] = rate_to_8h(frame["rate"], frame["interval_h"])
    stream = frame.groupby(STREAM, sort=False).ngroup().to_numpy()
    frame["ewma_8h"] = _ewma(frame["rate_8h"].to_numpy(), stream, EWMA_ALPHA)
    frame["rolling_mean_8h"] = rate_to_8h(frame["rate_mean_21"], frame["interval_h"])
    times = frame["funding_time"].astype("int64").to_numpy()
    # Position keys that keep streams apart: stream × span + time, span wider than any time range.
    span = int(times.max() - times.min()) + 1 if len(times) else 1
    key = stream.astype("int64") * (2 * span) + (times - (times.min() if len(times) else 0))
    for name, values in cross_venue_features(frame, stream, key, 2 * span).items():
        frame[name] = values
    known_next = frame[["target_time", "target_rate", "target_interval_h"]].notna().all(axis=1)
    frame["y_next"] = np.where(known_next, rate_to_8h(frame["target_rate"], frame["target_interval_h"]), np.nan)
    frame["accrued_next"] = frame["target_rate"].where(known_next)
    frame["target_time_next"] = frame["target_time"].where(known_next)
    rate = frame["rate"].to_numpy(dtype="float64")
    hours = frame["interval_h"].to_numpy(dtype="float64")
    sum_rate = np.concatenate([[0.0], np.cumsum(rate)])
    sum_hours = np.concatenate([[0.0], np.cumsum(hours)])
    for name, h in HORIZONS.items():
        if h is None:
            continue
        last = np.searchsorted(key, key + int(h * 3_600_000_000_000), side="right")
        first = np.arange(len(frame)) + 1
        covered = sum_hours[last] - sum_hours[first]
        complete = np.abs(covered - h) < 1e-9
        accrued = np.where(complete, sum_rate[last] - sum_rate[first], np.nan)
        frame[f"accrued_{name}"] = accrued
        frame[f"y_{name}"] = accrued * 8.0 / h
        frame[f"target_time_{name}"] = (frame["funding_time"] + pd.Timedelta(hours=h)).where(complete)
    return frame


def cross_venue_features(frame: pd.DataFrame, stream: np.ndarray, key: np.ndarray, stride: int) -> dict:
    """CROSS_VENUE_FEATURES of stream-sorted rows: what the base's other streams had settled at the row's T.

    `cross_venue_8h`: mean of each other stream's latest rate_8h settled at or before T and not
    older than that stream's interval; `hourly_venues_<h>h_8h`: mean rate_8h of the other streams'
    hourly windows settled in (T − h, T]. Each `..._gap_8h` is that minus the row's own rate_8h.
    Only rows with funding_time ≤ T enter, so a later print never changes a row (NaN: none known).
    `key` is the sorted stream × `stride` + time position key of `forecast_frame`.
    """
    n = len(frame)
    rate_8h = frame["rate_8h"].to_numpy(dtype="float64")
    out = {name: np.full(n, np.nan) for name in CROSS_VENUE_FEATURES}
    if n == 0:
        return out
    stream_base = pd.factorize(frame["base"].to_numpy())[0][np.r_[0, np.flatnonzero(np.diff(stream)) + 1]]
    if (stream_base < 0).any():
        raise SchemaError("forecast features: missing base")
    # Every ordered pair of distinct streams of a base, then every row of the first with the second.
    by_base = np.argsort(stream_base, kind="stable")
    group = np.searchsorted(stream_base[by_base], stream_base)
    size = np.bincount(stream_base)[stream_base]
    first, second = [], []
    for s in range(len(stream_base)):
        members = by_base[group[s] : group[s] + size[s]]
        others = members[members != s]
        first.append(np.full(len(others), s))
        second.append(others)
    pair_first, pair_second = np.concatenate(first), np.concatenate(second)
    if not len(pair_first):
        return out
    row_start = np.searchsorted(stream, np.arange(len(stream_base)))
    rows_per_stream = np.bincount(stream, minlength=len(stream_base))
    per_pair = rows_per_stream[pair_first]
    row = np.repeat(row_start[pair_first], per_pair) + (
        np.arange(per_pair.sum()) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    )
    other = np.repeat(pair_second, per_pair)
    at = other * stride + (key[row] - stream[row].astype("int64") * stride)
    latest = np.searchsorted(key, at, side="right") - 1
    hours = frame["interval_h"].to_numpy(dtype="float64")
    found = (latest >= 0) & (stream[np.maximum(latest, 0)] == other)
    latest = np.maximum(latest, 0)
    fresh = found & (at - key[latest] <= np.rint(hours[latest] * NS_PER_HOUR))
    _mean_into(out["cross_venue_8h"], row[fresh], rate_8h[latest[fresh]], n)
    out["cross_venue_gap_8h"] = out["cross_venue_8h"] - rate_8h
    hourly = found & (hours[latest] <= HOURLY_INTERVAL_H)
    cumulative = np.concatenate([[0.0], np.cumsum(rate_8h)])
    for h in HOURLY_LOOKBACK_H:
        since = np.searchsorted(key, at[hourly] - h * NS_PER_HOUR, side="right") - 1
        last = latest[hourly]
        totals = np.bincount(row[hourly], weights=cumulative[last + 1] - cumulative[since + 1], minlength=n)
        counts = np.bincount(row[hourly], weights=(last - since).astype("float64"), minlength=n)
        name = f"hourly_venues_{h}h_8h"
        out[name] = np.divide(totals, counts, out=np.full(n, np.nan), where=counts > 0)
        out[f"hourly_venues_{h}h_gap_8h"] = out[name] - rate_8h
    return out


def _mean_into(target: np.ndarray, row: np.ndarray, values: np.ndarray, n: int) -> None:
    """target[i] = mean of the values of row i, where row i has any."""
    totals = np.bincount(row, weights=values, minlength=n)
    counts = np.bincount(row, minlength=n)
    np.divide(totals, counts, out=target, where=counts > 0)


def to_accrued(y, frame: pd.DataFrame, horizon: str) -> np.ndarray:
    """Mean 8h-equivalent rate over the horizon → funding accrued over it in the symbol's own windows."""
    h = horizon_hours(horizon)
    scale = frame["target_interval_h"].to_numpy(dtype="float64") / 8.0 if h is None else h / 8.0
    return np.asarray(y, dtype="float64") * scale


def horizon_windows(frame: pd.DataFrame, horizon: str) -> np.ndarray:
    """How many of the row's own windows the horizon spans (1 for the next window)."""
    h = horizon_hours(horizon)
    return np.ones(len(frame)) if h is None else h / frame["interval_h"].to_numpy(dtype="float64")


@dataclass(frozen=True)
class AR1:
    """Per-stream AR(1) of the 8h-equivalent rate, x' − μ = φ (x − μ), fitted on training rows."""

    params: pd.DataFrame  # index (venue, symbol); columns mu, phi

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> AR1:
        """OLS on consecutive pairs of each stream's rows (pairs across a gap are left out)."""
        require_columns(frame, [*STREAM, "funding_time", "interval_h", "rate_8h"], "AR(1) rows")
        x = frame["rate_8h"].to_numpy(dtype="float64")
        same = (frame[STREAM].shift(-1) == frame[STREAM]).all(axis=1).to_numpy()
        step = (frame["funding_time"].shift(-1) - frame["funding_time"]) / pd.Timedelta(hours=1)
        consecutive = same & np.isclose(step.to_numpy(dtype="float64"), frame["interval_h"].to_numpy(dtype="float64"))
        pairs = pd.DataFrame({"x": x[:-1], "x_next": x[1:]}).loc[consecutive[:-1]] if len(x) > 1 else None
        if pairs is None or pairs.empty:
            return cls(pd.DataFrame(columns=["mu", "phi"], index=pd.MultiIndex.from_tuples([], names=STREAM)))
        keys = frame.iloc[np.flatnonzero(consecutive[:-1])][STREAM]
        pairs.index = pd.MultiIndex.from_frame(keys)
        grouped = pairs.groupby(level=STREAM, sort=True)
        n = grouped.size()
        mx, my = grouped["x"].mean(), grouped["x_next"].mean()
        cov = (pairs["x"] * pairs["x_next"]).groupby(level=STREAM).mean() - mx * my
        var = (pairs["x"] ** 2).groupby(level=STREAM).mean() - mx**2
        phi = (cov / var.where(var > 0)).clip(-AR1_MAX_PHI, AR1_MAX_PHI)
        mu = (my - phi * mx) / (1 - phi)
        fitted = pd.DataFrame({"mu": mu, "phi": phi}).loc[(n >= AR1_MIN_PAIRS) & phi.notna()]
        return cls(fitted)

    def mean_forecast(self, frame: pd.DataFrame, windows: np.ndarray) -> np.ndarray:
        """Mean of the next `windows` steps' expected 8h rates; streams without a fit keep their last value."""
        index = pd.MultiIndex.from_frame(frame[STREAM])
        mu = self.params["mu"].reindex(index).to_numpy(dtype="float64")
        phi = self.params["phi"].reindex(index).to_numpy(dtype="float64")
        x = frame["rate_8h"].to_numpy(dtype="float64")
        fitted = np.isfinite(mu) & np.isfinite(phi)
        phi = np.where(fitted, phi, 0.0)
        n = np.asarray(windows, dtype="float64")
        # Σ_{k=1..n} φ^k / n, written so φ → 0 and φ → 1 stay finite.
        decay = np.where(np.abs(1 - phi) > 1e-12, phi * (1 - phi**n) / np.where(phi != 1, 1 - phi, 1.0) / n, 1.0)
        return np.where(fitted, mu + (x - np.where(fitted, mu, 0.0)) * decay, x)

    def to_records(self) -> list[list]:
        return [[v, s, float(r.mu), float(r.phi)] for (v, s), r in self.params.iterrows()]

    @classmethod
    def from_records(cls, records: list[list]) -> AR1:
        frame = pd.DataFrame(records, columns=["venue", "symbol", "mu", "phi"])
        return cls(frame.set_index(STREAM)[["mu", "phi"]])


def baseline_y(frame: pd.DataFrame, horizon: str, ar1: AR1) -> pd.DataFrame:
    """Each trader baseline's forecast of `y_<horizon>`, from the row's information only.

    The venue's quote exists only where predicted prints do; elsewhere "venue" is the last value
    (as the AR(1) is for a stream without a fit), so every baseline scores the same rows.
    """
    require_columns(frame, ["rate_8h", "ewma_8h", "rolling_mean_8h", "interval_h"], "baseline rows")
    last = frame["rate_8h"].to_numpy(dtype="float64")
    quote = frame[VENUE_QUOTE].to_numpy(dtype="float64") if VENUE_QUOTE in frame else np.full(len(frame), np.nan)
    return pd.DataFrame(
        {
            "last": last,
            "rolling_mean": frame["rolling_mean_8h"].to_numpy(dtype="float64"),
            "ewma": frame["ewma_8h"].to_numpy(dtype="float64"),
            "interest": np.full(len(frame), INTEREST_RATE_8H),
            "ar1": ar1.mean_forecast(frame, horizon_windows(frame, horizon)),
            "venue": np.where(np.isfinite(quote), quote, last),
        },
        index=frame.index,
    )


def with_venue_quotes(frame: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """`frame` with VENUE_QUOTE: the venue's predicted rate of each row's next window, in force at the row's time.

    At a row's funding_time T the open window is the one settling at its target_time; its quote is
    the newest predicted print (live or reconstructed) for that window stamped at or before T, the
    model's own information time. Rows without one get NaN, never a quote sent after T.
    """
    require_columns(frame, [*STREAM, "funding_time", "target_time", "target_interval_h"], "venue-quote rows")
    require_columns(predicted, QUOTE_INPUT_COLUMNS, "predicted prints")
    keys = [*STREAM, "target_time"]
    quotes = predicted.loc[predicted["kind"] == "predicted", [*STREAM, "funding_time", "ts", "rate", "interval_h"]]
    quotes = quotes.rename(columns={"funding_time": "target_time", "interval_h": "quote_interval_h"})
    quotes = _ns_times(quotes, ["target_time", "ts"]).dropna(subset=["rate"]).sort_values("ts", kind="stable")
    probe = _ns_times(frame[keys].assign(ts=frame["funding_time"], _row=np.arange(len(frame))), ["target_time", "ts"])
    probe = probe.dropna(subset=["target_time"]).sort_values("ts", kind="stable")
    found = pd.merge_asof(probe, quotes, on="ts", by=keys, direction="backward").sort_values("_row")
    quote_8h = np.full(len(frame), np.nan)
    rate = found["rate"].to_numpy(dtype="float64")
    quote_8h[found["_row"].to_numpy()] = rate * 8.0 / found["quote_interval_h"].to_numpy(dtype="float64")
    out = frame.copy()
    out[VENUE_QUOTE] = quote_8h
    return out


def _ns_times(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns as datetime64[ns, UTC], so quotes and rows of any stored unit join."""
    return frame.assign(**{c: pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]") for c in columns})


def find_mass_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Per venue, the 8h-equivalent rates holding at least MASS_MIN_SHARE of its windows (most common first)."""
    require_columns(frame, ["venue", "rate_8h"], "mass-point rows")
    values = frame[["venue"]].assign(value=np.round(frame["rate_8h"].to_numpy(dtype="float64"), MASS_DECIMALS))
    counts = values.groupby(["venue", "value"]).size().rename("n").reset_index()
    counts["share"] = counts["n"] / counts.groupby("venue")["n"].transform("sum")
    points = counts.loc[counts["share"] >= MASS_MIN_SHARE].sort_values(["venue", "share"], ascending=[True, False])
    points = points.groupby("venue").head(MAX_MASS_POINTS)
    return points.rename(columns={"value": "mass_8h"})[["venue", "mass_8h", "share"]].reset_index(drop=True)


def nearest_mass(frame: pd.DataFrame, points: pd.DataFrame, column: str = "rate_8h") -> np.ndarray:
    """The venue's mass point nearest to `column` per row (NaN for a venue without one)."""
    value = frame[column].to_numpy(dtype="float64")
    best = np.full(len(frame), np.nan)
    best_dist = np.full(len(frame), np.inf)
    venue = frame["venue"].to_numpy()
    for mass_venue, mass in zip(points["venue"], points["mass_8h"], strict=True):
        dist = np.where(venue == mass_venue, np.abs(value - mass), np.inf)
        closer = dist < best_dist
        best, best_dist = np.where(closer, mass, best), np.where(closer, dist, best_dist)
    return best


def on_mass(value, mass) -> np.ndarray:
    """Whether an 8h-equivalent value sits on the mass point (within quote precision)."""
    return np.abs(np.asarray(value, dtype="float64") - np.asarray(mass, dtype="float64")) <= MASS_POINT_TOL


def add_mass_features(frame: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """MASS_FEATURES and `mass_8h` (the nearest mass point) for sorted forecast-frame rows.

    mass_dist: rate_8h − nearest mass point; on_mass: 1 when on it; mass_run: windows in a row the
    stream has sat on that point up to this one, at most MASS_SHARE_WINDOWS (what a week's warm-up
    holds, so that its first rows read as the training rows did); mass_share_21: share of its last
    21 windows on any of the venue's mass points.
    """
    out = frame.copy()
    mass = nearest_mass(out, points)
    sitting = on_mass(out["rate_8h"], mass)
    stream = out.groupby(STREAM, sort=False).ngroup().to_numpy()
    out["mass_8h"] = mass
    out["mass_dist"] = out["rate_8h"].to_numpy() - mass
    out["on_mass"] = sitting.astype("float64")
    starts = np.r_[True, (stream[1:] != stream[:-1]) | (mass[1:] != mass[:-1])]
    breaks = np.cumsum(~sitting | starts)
    run = np.where(sitting, pd.Series(sitting).groupby(breaks).cumsum().to_numpy(), 0)
    out["mass_run"] = np.minimum(run, MASS_SHARE_WINDOWS).astype("float64")
    # Streams are contiguous and sorted, so the grouped rolling mean comes back in row order.
    out["mass_share_21"] = (
        pd.Series(sitting.astype("float64"))
        .groupby(stream)
        .rolling(MASS_SHARE_WINDOWS, min_periods=1)
        .mean()
        .to_numpy()
    )
    return out


def _ewma(values: np.ndarray, stream: np.ndarray, alpha: float) -> np.ndarray:
    """e_t = α x_t + (1 − α) e_(t−1) within each (contiguous) stream, started at its first value."""
    from scipy.signal import lfilter  # ~2 s to import: not when the definitions load

    out = np.empty_like(values)
    bounds = np.flatnonzero(np.r_[True, stream[1:] != stream[:-1], True])
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        segment = values[start:end]
        out[start:end], _ = lfilter([alpha], [1.0, alpha - 1.0], segment, zi=[(1 - alpha) * segment[0]])
    return out
