"""Which clock a file's times were written in, inferred from its rates, and its settlement interval.

Some exports (the shipped sample) stamp prints with the wall-clock time of the machine that
collected them. Run only when asked (`clock="infer"`): each file's whole-hour offset is inferred
by aligning its rates with files already on the venues' UTC settlement grids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.domain.time import KNOWN_INTERVALS_H, NS_PER_HOUR

# Whole-hour clock offsets a machine's local time can have (UTC-12 .. UTC+14).
CLOCK_OFFSET_CANDIDATES = tuple(range(-12, 15))
# Share of consecutive prints that must be one interval apart for the interval to count as detected.
MIN_INTERVAL_SHARE = 0.9
# Consecutive off-grid prints that mean the clock changed (e.g. DST) rather than a late settlement.
CLOCK_CHANGE_RUN = 6
# Reference windows in the rolling mean removed before correlating: regimes last weeks and
# would otherwise dominate the agreement score and flatten it across shifts.
DETREND_WINDOWS = 21
MIN_OVERLAP = 30


class ClockOffsetError(SchemaError):
    """A file's clock offset cannot be inferred, does not fit the venue's grid, or changes within the file."""


@dataclass(frozen=True)
class RateSeries:
    """One file's settled rates at integer hours since the epoch, in the file's own clock.

    `grid_phase_h` is the UTC hour of the venue's first daily settlement.
    """

    hours: np.ndarray
    rates: np.ndarray
    interval_h: int
    grid_phase_h: int = 0

    def admissible_offsets(self, candidates: Iterable[int]) -> list[int]:
        """Offsets that put the bulk of the prints on the venue's UTC grid (all, for hourly)."""
        if self.interval_h == 1:
            return list(candidates)
        residue = modal_residue(self.hours - self.grid_phase_h, self.interval_h)
        return [o for o in candidates if (residue - o) % self.interval_h == 0]


@dataclass(frozen=True)
class ClockOffsetFit:
    offset_h: int
    scores: dict[int, float] = field(default_factory=dict)


def modal_residue(hours: np.ndarray, interval_h: int) -> int:
    return int(np.bincount(np.mod(hours, interval_h), minlength=interval_h).argmax())


def hourly_accrual(series: RateSeries, offset_h: int) -> tuple[int, np.ndarray]:
    """Per-hour funding (rate / interval over the hours each window covers), UTC after `offset_h`.

    Returns the first hour and a dense array; hours no print covers are NaN. Later prints
    of a window already covered do not overwrite the first.
    """
    utc = series.hours - offset_h
    ends = (utc - series.grid_phase_h) // series.interval_h * series.interval_h + series.grid_phase_h
    ends, first = np.unique(ends, return_index=True)
    per_hour = series.rates[first] / series.interval_h
    start = int(ends.min()) - series.interval_h
    dense = np.full(int(ends.max()) - start, np.nan)
    for k in range(1, series.interval_h + 1):
        dense[ends - k - start] = per_hour
    return start, dense


@dataclass(frozen=True)
class Accrual:
    """A series' per-hour funding (`hourly_accrual`) as running sums: its funding over any whole hours in O(1)."""

    start: int
    cum: np.ndarray
    covered: np.ndarray

    @classmethod
    def of(cls, series: RateSeries, offset_h: int) -> Accrual:
        start, dense = hourly_accrual(series, offset_h)
        cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(dense))])
        return cls(start, cum, np.concatenate([[0], np.cumsum(np.isfinite(dense))]))

    def over(self, ends: np.ndarray, window_h: int) -> np.ndarray:
        """Funding accrued over [end - window_h, end) for each end; NaN where not covered."""
        hi = ends - self.start
        lo = hi - window_h
        ok = (lo >= 0) & (hi < len(self.cum))
        out = np.full(len(ends), np.nan)
        lo_ok, hi_ok = lo[ok], hi[ok]
        full = self.covered[hi_ok] - self.covered[lo_ok] == window_h
        out[np.flatnonzero(ok)[full]] = (self.cum[hi_ok] - self.cum[lo_ok])[full]
        return out


def detrended(values: np.ndarray) -> np.ndarray:
    trend = pd.Series(values).rolling(DETREND_WINDOWS, center=True, min_periods=DETREND_WINDOWS // 2).mean()
    return values - trend.to_numpy()


@dataclass(frozen=True)
class Reference:
    """A UTC reference's settlement windows and its detrended funding over them, prepared once per inference:
    every candidate offset of every series is compared with the same values."""

    ends: np.ndarray
    window_h: int
    values: np.ndarray

    @classmethod
    def of(cls, reference: RateSeries) -> Reference:
        ends = np.unique(reference.hours)
        return cls(ends, reference.interval_h, detrended(Accrual.of(reference, 0).over(ends, reference.interval_h)))


def agreement(mine: Accrual, reference: Reference) -> float:
    """Correlation of a shifted series with a UTC reference, window by window.

    Both sides are funding accrued over the reference's windows, with the slow regime removed.
    NaN when they overlap on fewer than MIN_OVERLAP windows.
    """
    x, y = detrended(mine.over(reference.ends, reference.window_h)), reference.values
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < MIN_OVERLAP or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def mean_finite(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def infer_clock_offset(
    series: Sequence[RateSeries],
    references: Sequence[RateSeries],
    candidates: Iterable[int] = CLOCK_OFFSET_CANDIDATES,
) -> ClockOffsetFit:
    """The whole-hour offset (local = UTC + offset) of files written by one clock.

    Candidates are first cut to those that put every series on its venue's settlement grid;
    the grid alone cannot tell offsets one interval apart (+3 and -5 on an 8h grid; anything
    on an hourly grid), so among those the offset that maximises the mean agreement with the
    UTC references wins. Pooling files of one clock makes the choice robust to one venue whose
    rate leads or lags the others.
    """
    if not series:
        raise ClockOffsetError("infer_clock_offset: no series given")
    candidates = list(candidates)
    admissible = [o for o in candidates if all(o in s.admissible_offsets(candidates) for s in series)]
    if not admissible:
        raise ClockOffsetError("the series do not share a settlement grid under any candidate offset")
    if len(admissible) == 1:
        return ClockOffsetFit(admissible[0], {admissible[0]: float("nan")})
    if not references:
        raise ClockOffsetError(
            f"offsets {admissible} all fit the settlement grid and there is no UTC reference series "
            "to choose between them"
        )
    prepared = [Reference.of(r) for r in references]
    scores = {}
    for o in admissible:
        shifted_series = [Accrual.of(s, o) for s in series]
        scores[o] = mean_finite([agreement(a, r) for a in shifted_series for r in prepared])
    finite = {o: v for o, v in scores.items() if np.isfinite(v)}
    if not finite:
        raise ClockOffsetError(f"no overlap with the UTC references for any offset in {admissible}")
    return ClockOffsetFit(max(finite, key=lambda o: finite[o]), scores)


def infer_offsets(series: dict[str, RateSeries], venues: dict[str, str]) -> dict[str, ClockOffsetFit]:
    """Clock offset of every named series (a file), given each one's venue.

    Series already on their grid are the UTC references; off-grid series sharing the same
    admissible offsets are taken as written by one clock and fitted together against the
    references and the hourly series; hourly series are then fitted per venue against all the
    corrected grid series.
    """
    fits: dict[str, ClockOffsetFit] = {}
    hourly = [n for n, s in series.items() if s.interval_h == 1]
    gridded = [n for n, s in series.items() if s.interval_h > 1]
    references = [n for n in gridded if 0 in series[n].admissible_offsets([0])]
    for n in references:
        fits[n] = ClockOffsetFit(0)
    groups: dict[tuple[int, ...], list[str]] = {}
    for n in gridded:
        if n not in fits:
            groups.setdefault(tuple(series[n].admissible_offsets(CLOCK_OFFSET_CANDIDATES)), []).append(n)
    provisional = [series[n] for n in references + hourly]
    for members in groups.values():
        try:
            fit = infer_clock_offset([series[n] for n in members], provisional)
        except ClockOffsetError as exc:
            raise ClockOffsetError(f"{members}: {exc}") from exc
        fits.update({n: fit for n in members})
    corrected = [shifted(series[n], fits[n].offset_h) for n in gridded]
    for venue in sorted({venues[n] for n in hourly}):
        members = [n for n in hourly if venues[n] == venue]
        try:
            fit = infer_clock_offset([series[n] for n in members], corrected)
        except ClockOffsetError as exc:
            raise ClockOffsetError(f"{members}: {exc}") from exc
        fits.update({n: fit for n in members})
    return fits


def shifted(series: RateSeries, offset_h: int) -> RateSeries:
    return RateSeries(series.hours - offset_h, series.rates, series.interval_h, series.grid_phase_h)


def detect_interval(name: str, hours: np.ndarray) -> int:
    """The settlement interval in hours: the commonest step between prints, which must dominate."""
    steps = np.diff(np.unique(hours))
    if not len(steps):
        raise ClockOffsetError(f"{name}: needs at least two distinct settlement times to detect its interval")
    values, counts = np.unique(steps, return_counts=True)
    interval = int(values[counts.argmax()])
    share = counts.max() / counts.sum()
    if float(interval) not in KNOWN_INTERVALS_H or share < MIN_INTERVAL_SHARE:
        raise ClockOffsetError(
            f"{name}: no settlement interval detected (commonest step {interval}h covers {share:.0%} of steps)"
        )
    return interval


def check_clock_stable(name: str, series: RateSeries) -> None:
    """Raise when a long run of prints leaves the grid: the clock changed (e.g. DST) mid-file.

    Isolated off-grid prints are late settlements (HTX has some) and are floored later.
    """
    if series.interval_h == 1:
        return
    residues = np.mod(series.hours, series.interval_h)
    off = residues != modal_residue(series.hours, series.interval_h)
    run = 0
    for i, is_off in enumerate(off):
        run = run + 1 if is_off else 0
        if run >= CLOCK_CHANGE_RUN:
            when = pd.Timestamp(int(series.hours[i - run + 1]) * NS_PER_HOUR)
            raise ClockOffsetError(
                f"{name}: the clock shifts off the settlement grid from {when} (DST or clock change)"
            )


def check_on_grid(name: str, series: RateSeries) -> None:
    """Raise when the bulk of a file's UTC times sit off the venue's settlement hours: a wrong clock."""
    if series.interval_h == 1:
        return
    residue = modal_residue(series.hours - series.grid_phase_h, series.interval_h)
    if residue:
        raise ClockOffsetError(
            f"{name}: its times sit {residue}h past the venue's {series.interval_h}h settlement grid "
            f"(UTC hour {series.grid_phase_h} + k·{series.interval_h}); they are not UTC. "
            f"Say the file's clock: clock='+{residue}' (local = UTC + offset hours) or clock='infer'"
        )
