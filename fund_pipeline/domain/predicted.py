"""Predicted funding rates reconstructed from premium-index history, at a fixed cadence.

A venue quotes, during an open window, the rate its formula gives on the premium samples so
far. Venues publish the premium history (binance `premiumIndexKlines`, bybit
`premium-index-price-kline`, okx `premium-history`, hyperliquid `fundingHistory.premium`), so the
open window's predicted path can be rebuilt for the past and history gets the same intra-window
signal as the live collector. A formula is data (`FundingFormula`); each venue adapter states its
venue's documented one (`VenueAdapter.funding_formula`), and the simulated market settles with it.
What the venues document (their help pages):

- binance, bybit: the average premium is time-weighted with weights 1, 2, ..., n over the
  window's samples (binance: every 5 s, 5,760 per 8 h; bybit: every minute, 480 per 8 h);
  "the N-hour interest rate component and the N-hour premium component", a ±0.05 % dampener,
  then the symbol's own cap and floor (binance `fundingInfo`, bybit `upper/lowerFundingRate`).
  On an N-hour interval the two venues scale differently: binance states
  F = [P + clamp(I - P, ±0.05 %)] / (8 / N), the whole 8 h formula scaled (premium, interest
  and clamp: `clamp_scaled`); bybit F = P + clamp(I - P, ±0.05 %) with P the N-hour average
  itself and I = 0.03 % / (24 / N), only the interest scaled (`premium_scaled` off). Both
  give F = I·N/8 exactly inside the band.
- okx: MA(premium - interest) with interest 0, uniform minute samples, clamped to a per-symbol
  floor and cap; from 2024-03-05 the average runs over the last N hours instead of the window
  so far (same value at the window's last minute). From 2025-04-10 00:01 UTC bybit's form:
  P + clamp(I - P, ±0.05 %), I = 0.03 % / (24 / N), then the floor and cap (`OkxAdapter.funding_formula`
  picks the variant in force at an instant).
- hyperliquid: the premium sampled every 5 s and averaged uniformly over the hour, the 8 h
  formula F = P + clamp(I - P, ±0.05 %) paid hourly at 1/8, capped at 4 % per hour.
- deribit: funding accrues every millisecond on the instantaneous premium (mark vs index) with
  a dead band (±0.025 % now, ±0.05 % formerly), per 8 h, times the time fraction; the band
  therefore applies to each sample before averaging (`band_per_sample`).

Reconstruction is honest only as far as the samples go: one-minute klines stand for binance's
5-second points (the close of each minute), and hyperliquid's history has one premium per hour
(the hour's average, known at its settlement), so its reconstructed path is that one point.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import pandas as pd

from fund_pipeline.domain.records import PRINT_COLUMNS
from fund_pipeline.domain.time import NS_PER_HOUR, NS_PER_SECOND, utc_from_ns

RECONSTRUCTED_SOURCE = "reconstructed"
SAMPLE_COLUMNS = ["symbol", "base", "ts", "premium", "interval_h"]
# Hours the interest rate and the clamp are stated for.
FORMULA_BASIS_H = 8.0


class FormulaKind(StrEnum):
    CLAMPED = "clamped"  # F = P + clamp(I - P, ±c)
    PREMIUM_ONLY = "premium_only"  # F = MA(P - I) (okx before 2025-04-10, I = 0)
    DEAD_BAND = "dead_band"  # F = max(0, P - c) + min(0, P + c), no interest (deribit)


class Weighting(StrEnum):
    UNIFORM = "uniform"  # every sample counts the same
    LINEAR = "linear"  # the i-th sample of the window weighs i (binance, bybit)


class AveragingWindow(StrEnum):
    CURRENT = "current"  # from the window's start to now
    MOVING = "moving"  # the last N hours, N the interval (okx since 2024-03-05)


@dataclass(frozen=True)
class FundingFormula:
    """One market's funding formula for a symbol, as data.

    `interest_rate_8h` and `clamp_8h` are per 8 h; the interest is always scaled to the interval,
    the premium when `premium_scaled`, the clamp (or dead band) when `clamp_scaled`: hyperliquid's
    hourly 1/8 of the 8 h formula is premium, interest and clamp all scaled by 1/8. `cap` bounds
    the rate per interval from above, `floor` from below (default -cap). `sample_step_s` is the
    spacing of the premium samples: a linear weight is the sample's slot in the window, on intervals
    longer than `uniform_up_to_h` (binance averages its 1-hour windows uniformly).
    """

    interest_rate_8h: float
    clamp_8h: float
    cap: float
    floor: float | None = None
    kind: FormulaKind = FormulaKind.CLAMPED
    weighting: Weighting = Weighting.UNIFORM
    window: AveragingWindow = AveragingWindow.CURRENT
    premium_scaled: bool = True
    clamp_scaled: bool = False
    band_per_sample: bool = False
    sample_step_s: float = 60.0
    uniform_up_to_h: float = 0.0

    def __post_init__(self) -> None:
        if not (self.cap > 0 and np.isfinite(self.cap)):
            raise ValueError(f"FundingFormula: cap must be a positive finite rate, got {self.cap}")
        if self.floor is not None and not self.floor < self.cap:
            raise ValueError(f"FundingFormula: floor {self.floor} must be below cap {self.cap}")
        if self.clamp_8h < 0:
            raise ValueError(f"FundingFormula: clamp_8h must be >= 0, got {self.clamp_8h}")
        if self.sample_step_s <= 0:
            raise ValueError(f"FundingFormula: sample_step_s must be positive, got {self.sample_step_s}")
        if self.window is AveragingWindow.MOVING and self.weighting is not Weighting.UNIFORM:
            raise ValueError("FundingFormula: a moving averaging window is documented only with uniform weights")
        if self.band_per_sample and self.kind is not FormulaKind.DEAD_BAND:
            raise ValueError("FundingFormula: band_per_sample applies to the dead-band formula only")

    @property
    def lower(self) -> float:
        return -self.cap if self.floor is None else self.floor

    def linear_on(self, interval_h) -> np.ndarray:
        """Whether a window of `interval_h` hours weighs its samples by their slot (1, 2, ..., n)."""
        longer = np.asarray(interval_h, dtype=np.float64) > self.uniform_up_to_h
        return longer & (self.weighting is Weighting.LINEAR)

    def bounded(self, cap: float, floor: float | None = None) -> FundingFormula:
        """The same formula with a symbol's own cap and floor (binance and bybit list them per symbol);
        a floor of -cap is stored as None, so symbols with symmetric bounds share one formula."""
        return replace(self, cap=cap, floor=None if floor is None or floor == -cap else floor)


def _scale(interval_h) -> np.ndarray:
    return np.asarray(interval_h, dtype=np.float64) / FORMULA_BASIS_H


def _band(premium: np.ndarray, interval_h, formula: FundingFormula) -> np.ndarray:
    """The dead-band formula before the caps."""
    scale = _scale(interval_h)
    p = scale * premium if formula.premium_scaled else premium
    band = formula.clamp_8h * (scale if formula.clamp_scaled else 1.0)
    return np.maximum(0.0, p - band) + np.minimum(0.0, p + band)


def uncapped_rate(avg_premium, interval_h, formula: FundingFormula) -> np.ndarray:
    """The formula on the average premium, before the symbol's caps (per interval)."""
    avg = np.asarray(avg_premium, dtype=np.float64)
    if formula.kind is FormulaKind.DEAD_BAND:
        return avg if formula.band_per_sample else _band(avg, interval_h, formula)
    scale = _scale(interval_h)
    premium = scale * avg if formula.premium_scaled else avg
    interest = formula.interest_rate_8h * scale
    if formula.kind is FormulaKind.PREMIUM_ONLY:
        return premium - interest
    clamp = formula.clamp_8h * (scale if formula.clamp_scaled else 1.0)
    gap = interest - premium
    # Inside the band the rate is the interest itself, not P + (I - P) with its rounding.
    return np.where(np.abs(gap) <= clamp, interest, premium + np.clip(gap, -clamp, clamp))


def funding_rate(avg_premium, interval_h, formula: FundingFormula) -> np.ndarray:
    """The rate per interval the formula gives on an average premium, capped."""
    return np.clip(uncapped_rate(avg_premium, interval_h, formula), formula.lower, formula.cap)


def sample_values(premium, interval_h, formula: FundingFormula) -> np.ndarray:
    """What each premium sample adds to the window's average: its banded rate under a per-sample dead band
    (deribit), else the premium itself. `funding_rate` of the (weighted) average is the window's rate."""
    p = np.asarray(premium, dtype=np.float64)
    return _band(p, interval_h, formula) if formula.band_per_sample else p


def window_rate(premium, slot, interval_h: float, formula: FundingFormula) -> float:
    """The formula on one window's samples (`slot`: 1-based sample slot in the window)."""
    p = np.asarray(premium, dtype=np.float64)
    if len(p) == 0:
        raise ValueError("window_rate: no premium samples in the window")
    values = sample_values(p, interval_h, formula)
    weights = np.asarray(slot, dtype=np.float64) if formula.linear_on(interval_h) else np.ones(len(p))
    return float(funding_rate(np.dot(weights, values) / weights.sum(), interval_h, formula))


@dataclass(frozen=True)
class ReconstructionConfig:
    """Cadence of the reconstructed path: a multiple of a second that divides every interval."""

    cadence_s: int = 300

    def __post_init__(self) -> None:
        if self.cadence_s <= 0:
            raise ValueError(f"ReconstructionConfig: cadence_s must be positive, got {self.cadence_s}")


def _window_steps(interval_h: np.ndarray, cadence_ns: int, phase_ns: int) -> np.ndarray:
    if not (np.isfinite(interval_h).all() and (interval_h > 0).all()):
        bad = interval_h[~(np.isfinite(interval_h) & (interval_h > 0))][:3]
        raise ValueError(f"reconstruct_predicted: interval_h must be positive and finite, got {bad.tolist()}")
    step = np.rint(interval_h * NS_PER_HOUR).astype(np.int64)
    uneven = step % cadence_ns != 0
    if uneven.any():
        raise ValueError(
            f"reconstruct_predicted: cadence {cadence_ns // NS_PER_SECOND}s does not divide interval(s) "
            f"{sorted(set(interval_h[uneven].tolist()))}h"
        )
    if phase_ns % cadence_ns:
        raise ValueError("reconstruct_predicted: the settlement phase is not on the cadence grid")
    return step


def _group_path(
    sym: np.ndarray,
    ts: np.ndarray,
    premium: np.ndarray,
    interval_h: np.ndarray,
    formula: FundingFormula,
    cadence_ns: int,
    phase_ns: int,
) -> dict[str, np.ndarray]:
    """The predicted path of samples that share one formula; arrays sorted by (sym, ts).

    At a cadence point t of a window [start, end) (t = start + k·cadence, k = 1..K, the last one
    the settlement) the rate uses the window's samples with ts < t, never a later one. A symbol's
    path stops at the first point that has used its last sample.
    """
    step = _window_steps(interval_h, cadence_ns, phase_ns)
    start = (ts - phase_ns) // step * step + phase_ns
    order = np.lexsort((ts, start, sym))
    sym, ts, premium, interval_h, step, start = (a[order] for a in (sym, ts, premium, interval_h, step, start))
    new_window = np.ones(len(ts), dtype=bool)
    new_window[1:] = (sym[1:] != sym[:-1]) | (start[1:] != start[:-1]) | (step[1:] != step[:-1])
    window = np.cumsum(new_window) - 1
    first = np.flatnonzero(new_window)
    w_sym, w_start, w_step, w_interval = sym[first], start[first], step[first], interval_h[first]
    point = (ts - start) // cadence_ns  # 0-based: first used at point k = point + 1
    slot = ((ts - start) // int(formula.sample_step_s * NS_PER_SECOND) + 1).astype(np.float64)
    weight = np.where(formula.linear_on(interval_h), slot, 1.0)
    values = sample_values(premium, interval_h, formula)
    sample_index = np.arange(len(ts))
    # Points run to the first one that has used the symbol's last sample, not past its data.
    sym_last = np.full(int(sym.max()) + 1, np.iinfo(np.int64).min)
    np.maximum.at(sym_last, sym, ts)
    w_points = (sym_last[w_sym] - w_start) // cadence_ns + 1

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("sym", "funding_time", "ts", "rate", "interval_h", "last")}
    n_points = w_step // cadence_ns
    for k_points in np.unique(n_points):
        windows = np.flatnonzero(n_points == k_points)
        local = np.full(len(w_sym), -1, dtype=np.int64)
        local[windows] = np.arange(len(windows))
        rows = local[window] >= 0
        cells = local[window[rows]] * k_points + point[rows]
        size = len(windows) * int(k_points)
        shape = (len(windows), int(k_points))
        wsum = np.bincount(cells, weights=weight[rows] * values[rows], minlength=size).reshape(shape).cumsum(axis=1)
        wtot = np.bincount(cells, weights=weight[rows], minlength=size).reshape(shape).cumsum(axis=1)
        last = np.full(size, -1, dtype=np.int64)
        np.maximum.at(last, cells, sample_index[rows])
        last = np.maximum.accumulate(last.reshape(shape), axis=1)
        if formula.window is AveragingWindow.MOVING:
            ws, wt = wsum.copy(), wtot.copy()
            prev = windows[:-1]
            adjacent = (w_sym[prev] == w_sym[windows[1:]]) & (w_start[prev] + w_step[prev] == w_start[windows[1:]])
            # Samples of the previous window from t - N on: its total minus its sums before that point.
            wsum[1:][adjacent] += ws[:-1][adjacent][:, -1:] - ws[:-1][adjacent]
            wtot[1:][adjacent] += wt[:-1][adjacent][:, -1:] - wt[:-1][adjacent]
        # At least one sample of the window so far, and not beyond the symbol's data.
        quoted = (last >= 0) & (np.arange(k_points)[None, :] < w_points[windows][:, None])
        w_rows, k = np.nonzero(quoted)
        win = windows[w_rows]
        avg = wsum[quoted] / wtot[quoted]
        parts["sym"].append(w_sym[win])
        parts["funding_time"].append(w_start[win] + w_step[win])
        parts["ts"].append(w_start[win] + (k + 1) * cadence_ns)
        parts["rate"].append(funding_rate(avg, w_interval[win], formula))
        parts["interval_h"].append(w_interval[win])
        parts["last"].append(order[last[quoted]])
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def reconstruct_predicted(
    venue: str,
    samples: pd.DataFrame,
    formulas: dict[str, FundingFormula],
    config: ReconstructionConfig | None = None,
    phase_h: float = 0.0,
) -> pd.DataFrame:
    """Predicted prints (`source = reconstructed`) of one venue at the configured cadence.

    `samples`: symbol, base, ts (the instant the premium value is known), premium, interval_h
    (the symbol's interval at ts), optionally mark_price and index_price. `formulas`: symbol ->
    its formula. Windows sit on the venue's grid (every interval_h from midnight + `phase_h`);
    a point is emitted once the window has a sample and up to the first point that has used the
    symbol's last sample. Each print carries the mark and index of the last sample it used.
    """
    config = config or ReconstructionConfig()
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"reconstruct_predicted({venue}): missing sample column(s) {missing}")
    unknown = sorted(set(samples["symbol"].unique()) - set(formulas))
    if unknown:
        raise ValueError(f"reconstruct_predicted({venue}): no funding formula for symbol(s) {unknown[:5]}")
    premium = samples["premium"].to_numpy(dtype=np.float64)
    if not np.isfinite(premium).all():
        raise ValueError(
            f"reconstruct_predicted({venue}): {int((~np.isfinite(premium)).sum())} NaN/infinite premium(s)"
        )
    codes, found = pd.factorize(samples["symbol"], sort=True)
    symbols, sym = np.asarray(found, dtype=object), codes.astype(np.int64)
    ts = pd.to_datetime(samples["ts"], utc=True).astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    interval_h = samples["interval_h"].to_numpy(dtype=np.float64)
    cadence_ns, phase_ns = config.cadence_s * NS_PER_SECOND, int(round(phase_h * NS_PER_HOUR))
    chunks = []
    by_formula: dict[FundingFormula, list[int]] = {}
    for code, symbol in enumerate(symbols):
        by_formula.setdefault(formulas[symbol], []).append(code)
    for formula, codes in by_formula.items():
        rows = np.flatnonzero(np.isin(sym, codes))
        path = _group_path(sym[rows], ts[rows], premium[rows], interval_h[rows], formula, cadence_ns, phase_ns)
        path["last"] = rows[path["last"]]
        chunks.append(path)
    if not chunks:
        return pd.DataFrame({c: [] for c in PRINT_COLUMNS})
    path = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    order = np.lexsort((path["ts"], path["sym"]))
    last = path["last"][order]
    n = len(order)

    def column(name: str) -> np.ndarray:
        if name in samples.columns:
            return samples[name].to_numpy(dtype=np.float64)[last]
        return np.full(n, np.nan)

    return pd.DataFrame(
        {
            "venue": np.full(n, venue, dtype=object),
            "symbol": symbols[path["sym"][order]],
            "base": samples["base"].to_numpy(dtype=object)[last],
            "kind": np.full(n, "predicted", dtype=object),
            "funding_time": utc_from_ns(path["funding_time"][order]),
            "ts": utc_from_ns(path["ts"][order]),
            "received_at": pd.to_datetime(np.full(n, np.datetime64("NaT", "ns")), utc=True),
            "rate": path["rate"][order],
            "interval_h": path["interval_h"][order].astype(np.float64),
            "mark_price": column("mark_price"),
            "index_price": column("index_price"),
            "source": np.full(n, RECONSTRUCTED_SOURCE, dtype=object),
        },
        columns=PRINT_COLUMNS,
    )


# The reconstruction check's tolerance on the p95 absolute error per venue, per interval: exact
# (0) where the formula matches the market's and the samples are its own (the simulated market);
# one-minute klines standing for 5-second points leave a small residue on real venues, measured
# there before this is tightened. Where the clamp pins the rate to the interest rate the
# reconstruction must be exact everywhere.
RECONSTRUCTION_P95_TOLERANCE = 2e-6
ERROR_COLUMNS = ["venue", "symbol", "funding_time", "interval_h", "reconstructed", "settled", "abs_error", "pinned"]


def settlement_errors(
    predicted: pd.DataFrame, settled: pd.DataFrame, formulas: dict[str, FundingFormula]
) -> pd.DataFrame:
    """Each settled window's last reconstructed rate (at its settlement) against the settled rate.

    `pinned`: under a clamped formula the reconstruction is the interest rate scaled to the
    interval, the clamp's mass point, where it must match exactly. Windows missing on either side
    are left out.
    """
    last = predicted[(predicted["source"] == RECONSTRUCTED_SOURCE) & (predicted["ts"] == predicted["funding_time"])]
    rows = last[["venue", "symbol", "funding_time", "interval_h", "rate"]].rename(columns={"rate": "reconstructed"})
    truth = settled[["venue", "symbol", "funding_time", "rate"]].rename(columns={"rate": "settled"})
    out = rows.merge(truth.drop_duplicates(["venue", "symbol", "funding_time"]), on=["venue", "symbol", "funding_time"])
    out["abs_error"] = (out["reconstructed"] - out["settled"]).abs()
    interest = out["symbol"].map(
        {s: f.interest_rate_8h if f.kind is FormulaKind.CLAMPED else np.nan for s, f in formulas.items()}
    )
    out["pinned"] = out["reconstructed"] == interest * out["interval_h"] / FORMULA_BASIS_H
    return out[ERROR_COLUMNS].reset_index(drop=True)


def error_summary(errors: pd.DataFrame, tolerance: float = RECONSTRUCTION_P95_TOLERANCE) -> pd.DataFrame:
    """Per venue: windows compared, median and p95 absolute error, share exact, pinned windows and
    whether all of them are exact, and `passed` (p95 within tolerance and every pinned window exact)."""
    rows = []
    for venue, block in errors.groupby("venue", sort=True):
        err = block["abs_error"].to_numpy(dtype=np.float64)
        pinned = block["pinned"].to_numpy(dtype=bool)
        p95 = float(np.quantile(err, 0.95))
        pinned_exact = bool((err[pinned] == 0).all())
        rows.append(
            {
                "venue": venue,
                "n": len(block),
                "median_abs_error": float(np.median(err)),
                "p95_abs_error": p95,
                "exact_share": float((err == 0).mean()),
                "pinned": int(pinned.sum()),
                "pinned_exact": pinned_exact,
                "passed": p95 <= tolerance and pinned_exact,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["venue", "n", "median_abs_error", "p95_abs_error", "exact_share", "pinned", "pinned_exact", "passed"],
    )


def curve_input(settled: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """Settled and predicted prints in the order a live collector receives them: by `ts`.

    A window's settled print (stamped just after its settlement) follows its last quote and
    precedes the next window's first, so history replays bucket 0 as live does: the open window's
    quote, replaced by the settled rate at the settlement, rolled by the next window's quote.
    """
    parts = [part[PRINT_COLUMNS] for part in (settled, predicted) if len(part)]
    if not parts:
        return settled[PRINT_COLUMNS].reset_index(drop=True)
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["ts", "funding_time"], kind="stable").reset_index(drop=True)


def thin_to_cadence(prints: pd.DataFrame, cadence_s: int) -> pd.DataFrame:
    """Live predicted prints thinned to the reconstruction's cadence: per venue × symbol × window,
    the last print before each cadence point (the quote in force at it), so the warehouse stores
    live quotes at the same grid as reconstructed history, never at the stream's 1 Hz. Settled
    prints pass unchanged."""
    if cadence_s <= 0:
        raise ValueError(f"thin_to_cadence: cadence_s must be positive, got {cadence_s}")
    if prints.empty:
        return prints
    predicted = prints["kind"] == "predicted"
    quotes = prints.loc[predicted].sort_values("ts", kind="stable")
    ts = pd.to_datetime(quotes["ts"], utc=True).astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    point = ts // (cadence_s * NS_PER_SECOND)
    keys = quotes[["venue", "symbol", "funding_time"]].assign(_point=point)
    kept = quotes.loc[~keys.duplicated(keep="last").to_numpy()]
    return pd.concat([prints.loc[~predicted], kept]).sort_values("ts", kind="stable").reset_index(drop=True)


INTRA_WINDOW_HOURS = (1.0, 4.0)
INTRA_WINDOW_COLUMNS = [
    "venue",
    "symbol",
    "at",
    "funding_time",
    "hours_to_settlement",
    "predicted_now",
    "predicted_drift",
    *[f"predicted_{h:g}h_before" for h in INTRA_WINDOW_HOURS],
]


def intra_window_features(predicted: pd.DataFrame, at: pd.DataFrame, hours=INTRA_WINDOW_HOURS) -> pd.DataFrame:
    """The open window's signal at given instants, from predicted prints (live or reconstructed).

    `at`: venue, symbol, at (the instant), funding_time (the window's settlement). Per row: hours
    to settlement, the quote in force at `at` (`predicted_now`), its drift since the window's first
    quote, and the quote in force h hours before settlement when that instant is not after `at`
    (NaN otherwise: not known yet). Only prints with ts <= at count.
    """
    quotes = predicted.loc[predicted["kind"] == "predicted", ["venue", "symbol", "funding_time", "ts", "rate"]]
    quotes = quotes.sort_values("ts", kind="stable")
    rows = at[["venue", "symbol", "at", "funding_time"]].reset_index(drop=True)
    rows["_row"] = np.arange(len(rows))
    keys = ["venue", "symbol", "funding_time"]

    def quote_at(instant: pd.Series) -> np.ndarray:
        probe = rows[keys].assign(ts=instant.to_numpy(), _row=rows["_row"]).sort_values("ts", kind="stable")
        found = pd.merge_asof(probe, quotes, on="ts", by=keys, direction="backward")
        return found.sort_values("_row")["rate"].to_numpy(dtype=np.float64)

    first = quotes.groupby(keys, sort=False).head(1).rename(columns={"rate": "first_quote"})
    out = rows.merge(first[[*keys, "first_quote"]], on=keys, how="left").sort_values("_row")
    out["hours_to_settlement"] = (out["funding_time"] - out["at"]) / pd.Timedelta(hours=1)
    out["predicted_now"] = quote_at(out["at"])
    out["predicted_drift"] = out["predicted_now"] - out["first_quote"].where(out["predicted_now"].notna())
    for h in hours:
        instant = out["funding_time"] - pd.Timedelta(hours=h)
        known = (instant <= out["at"]).to_numpy()
        out[f"predicted_{h:g}h_before"] = np.where(known, quote_at(instant.where(known, out["at"])), np.nan)
    return out[[*INTRA_WINDOW_COLUMNS[:7], *[f"predicted_{h:g}h_before" for h in hours]]].reset_index(drop=True)
