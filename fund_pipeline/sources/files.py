"""Funding history from CSV/Parquet exports, e.g. the real public sample shipped with the package.

An export has three columns, `Symbol,Date,Funding Rate`, one file per symbol and venue, named
`<BASE>-<QUOTE>_<venue>_*.csv[.gz]` or `.parquet`. `Date` is wall-clock time of whatever machine
wrote the file, so it is not trusted: each file's clock offset is inferred from the data by
aligning its rates with files already on the UTC settlement grid (`infer_clock_offset`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fund_pipeline.domain.prints import (
    BAR_COLUMNS,
    MARKET_COLUMNS,
    SETTLEMENT_PHASE_H,
    SchemaError,
    empty_prints,
    floor_to_grid,
    normalise_prints,
    to_utc,
)
from fund_pipeline.sources.base import UnknownVenueError, check_venue

SAMPLE_ROOT = Path(__file__).parent / "sample_data" / "real_funding"
FILE_COLUMNS = ["Symbol", "Date", "Funding Rate"]
FILE_NAME = re.compile(r"^(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)_(?P<venue>[a-z0-9]+)_.*\.(csv|csv\.gz|parquet)$")

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
HOUR_NS = 3_600_000_000_000


class FileFormatError(SchemaError):
    """An export file does not have the columns, dates or rates it must have."""


class ClockOffsetError(SchemaError):
    """A file's clock offset cannot be inferred, or changes within the file."""


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


def window_accrual(series: RateSeries, offset_h: int, ends: np.ndarray, window_h: int) -> np.ndarray:
    """Funding accrued by `series` over [end - window_h, end) for each end; NaN where not covered."""
    start, dense = hourly_accrual(series, offset_h)
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(dense))])
    covered = np.concatenate([[0], np.cumsum(np.isfinite(dense))])
    hi = ends - start
    lo = hi - window_h
    ok = (lo >= 0) & (hi <= len(dense))
    out = np.full(len(ends), np.nan)
    lo_ok, hi_ok = lo[ok], hi[ok]
    full = covered[hi_ok] - covered[lo_ok] == window_h
    out[np.flatnonzero(ok)[full]] = (cum[hi_ok] - cum[lo_ok])[full]
    return out


def detrended(values: np.ndarray) -> np.ndarray:
    trend = pd.Series(values).rolling(DETREND_WINDOWS, center=True, min_periods=DETREND_WINDOWS // 2).mean()
    return values - trend.to_numpy()


def agreement(series: RateSeries, offset_h: int, reference: RateSeries) -> float:
    """Correlation of `series` shifted by `offset_h` with a UTC reference, window by window.

    Both sides are funding accrued over the reference's windows, with the slow regime removed.
    NaN when they overlap on fewer than MIN_OVERLAP windows.
    """
    ends = np.unique(reference.hours)
    ref = window_accrual(reference, 0, ends, reference.interval_h)
    mine = window_accrual(series, offset_h, ends, reference.interval_h)
    x, y = detrended(mine), detrended(ref)
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
            f"offsets {admissible} all fit the settlement grid and there is no UTC reference series to choose between them"
        )
    scores = {o: mean_finite([agreement(s, o, r) for s in series for r in references]) for o in admissible}
    finite = {o: v for o, v in scores.items() if np.isfinite(v)}
    if not finite:
        raise ClockOffsetError(f"no overlap with the UTC references for any offset in {admissible}")
    return ClockOffsetFit(max(finite, key=finite.get), scores)


def read_export(path: Path) -> pd.DataFrame:
    """Read and check one export: its three columns, parsable dates, finite rates."""
    try:
        raw = pd.read_parquet(path) if path.name.endswith(".parquet") else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"{path.name}: cannot be read: {exc}") from exc
    if list(raw.columns) != FILE_COLUMNS:
        raise FileFormatError(f"{path.name}: columns must be {FILE_COLUMNS}; got {list(raw.columns)}")
    dates = pd.to_datetime(raw["Date"], errors="coerce")
    if dates.isna().any():
        rows = (np.flatnonzero(dates.isna()) + 2).tolist()
        raise FileFormatError(f"{path.name}: unparsable Date at line(s) {rows[:10]}")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    rates = pd.to_numeric(raw["Funding Rate"], errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(rates)
    if bad.any():
        rows = (np.flatnonzero(bad) + 2).tolist()
        raise FileFormatError(f"{path.name}: NaN, infinite or non-numeric Funding Rate at line(s) {rows[:10]}")
    return pd.DataFrame(
        {"symbol": raw["Symbol"].astype(str), "local_time": dates.astype("datetime64[ns]"), "rate": rates}
    )


def detect_interval(path: Path, hours: np.ndarray) -> int:
    """The settlement interval in hours: the commonest step between prints, which must dominate."""
    steps = np.diff(np.unique(hours))
    if not len(steps):
        raise FileFormatError(f"{path.name}: needs at least two distinct settlement times to detect its interval")
    values, counts = np.unique(steps, return_counts=True)
    interval = int(values[counts.argmax()])
    share = counts.max() / counts.sum()
    if interval not in (1, 2, 4, 8) or share < MIN_INTERVAL_SHARE:
        raise FileFormatError(
            f"{path.name}: no settlement interval detected (commonest step {interval}h covers {share:.0%} of steps)"
        )
    return interval


def check_clock_stable(path: Path, series: RateSeries) -> None:
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
            when = pd.Timestamp(int(series.hours[i - run + 1]) * HOUR_NS)
            raise ClockOffsetError(
                f"{path.name}: the clock shifts off the settlement grid from {when} (DST or clock change)"
            )


@dataclass(frozen=True)
class ExportFile:
    path: Path
    venue: str
    symbol: str
    base: str
    quote: str
    frame: pd.DataFrame
    series: RateSeries


@functools.cache
def parse_export(path: Path, mtime_ns: int) -> ExportFile:
    """Parse one export once per process (keyed by modification time, so edits are re-read)."""
    match = FILE_NAME.match(path.name)
    if match is None:
        raise FileFormatError(f"{path.name}: name must look like <BASE>-<QUOTE>_<venue>_*.csv[.gz]|.parquet")
    base, quote, venue = match["base"], match["quote"], match["venue"]
    frame = read_export(path)
    expected = f"{base}-{quote}"
    wrong = frame.loc[frame["symbol"] != expected, "symbol"].unique().tolist()
    if wrong:
        raise FileFormatError(f"{path.name}: Symbol column holds {wrong[:5]}, expected only {expected}")
    hours = (frame["local_time"].dt.round("h").astype("int64") // HOUR_NS).to_numpy()
    series = RateSeries(hours, frame["rate"].to_numpy(), 1, SETTLEMENT_PHASE_H.get(venue, 0))
    series = RateSeries(hours, series.rates, detect_interval(path, hours), series.grid_phase_h)
    check_clock_stable(path, series)
    return ExportFile(path, venue, f"{base}/{quote}:{quote}", base, quote, frame, series)


def export_paths(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and re.search(r"\.(csv|csv\.gz|parquet)$", p.name))


def infer_offsets(files: Sequence[ExportFile]) -> dict[Path, ClockOffsetFit]:
    """Clock offset of every file.

    Files already on their grid are the UTC references; off-grid files sharing the same
    admissible offsets are taken as written by one clock and fitted together against the
    references and the hourly files; hourly files are then fitted per venue against all the
    corrected grid files.
    """
    fits: dict[Path, ClockOffsetFit] = {}
    hourly = [f for f in files if f.series.interval_h == 1]
    gridded = [f for f in files if f.series.interval_h > 1]
    references = [f for f in gridded if 0 in f.series.admissible_offsets([0])]
    for f in references:
        fits[f.path] = ClockOffsetFit(0)
    groups: dict[tuple[int, ...], list[ExportFile]] = {}
    for f in gridded:
        if f.path not in fits:
            groups.setdefault(tuple(f.series.admissible_offsets(CLOCK_OFFSET_CANDIDATES)), []).append(f)
    provisional = [f.series for f in references + hourly]
    for members in groups.values():
        try:
            fit = infer_clock_offset([f.series for f in members], provisional)
        except ClockOffsetError as exc:
            raise ClockOffsetError(f"{[f.path.name for f in members]}: {exc}") from exc
        fits.update({f.path: fit for f in members})
    corrected = [shifted(f.series, fits[f.path].offset_h) for f in gridded]
    for venue in sorted({f.venue for f in hourly}):
        members = [f for f in hourly if f.venue == venue]
        try:
            fit = infer_clock_offset([f.series for f in members], corrected)
        except ClockOffsetError as exc:
            raise ClockOffsetError(f"{[f.path.name for f in members]}: {exc}") from exc
        fits.update({f.path: fit for f in members})
    return fits


def shifted(series: RateSeries, offset_h: int) -> RateSeries:
    return RateSeries(series.hours - offset_h, series.rates, series.interval_h, series.grid_phase_h)


def count_gaps(funding_time: pd.Series, interval_h: int) -> int:
    """Settlement windows missing between the first and last print."""
    steps = funding_time.diff().dropna() / pd.Timedelta(hours=interval_h)
    return int((steps - 1).clip(lower=0).sum())


def to_prints(file: ExportFile, offset_h: int) -> tuple[pd.DataFrame, dict]:
    """UTC prints on the venue grid, first of each window kept, and what was done to get them."""
    series = file.series
    utc = to_utc(file.frame["local_time"] - pd.Timedelta(hours=offset_h))
    funding_time = floor_to_grid(utc, float(series.interval_h), float(series.grid_phase_h))
    frame = pd.DataFrame({"funding_time": funding_time, "rate": file.frame["rate"]})
    exact = frame.duplicated()
    deduped = frame.loc[~exact]
    conflicting = deduped["funding_time"].duplicated()
    clean = deduped.loc[~conflicting].sort_values("funding_time")
    n = len(clean)
    prints = normalise_prints(
        pd.DataFrame(
            {
                "venue": [file.venue] * n,
                "symbol": [file.symbol] * n,
                "base": [file.base] * n,
                "kind": ["settled"] * n,
                "funding_time": clean["funding_time"].to_numpy(),
                "ts": clean["funding_time"].to_numpy(),
                "received_at": [pd.NaT] * n,
                "rate": clean["rate"].to_numpy(),
                "interval_h": [float(series.interval_h)] * n,
                "mark_price": [np.nan] * n,
                "index_price": [np.nan] * n,
                "source": ["file"] * n,
            }
        )
    )
    report = {
        "rows_read": len(frame),
        "duplicates_dropped": int(exact.sum()),
        "conflicts": int(conflicting.sum()),
        "offset_applied_h": offset_h,
        "interval_h": series.interval_h,
        "gaps": count_gaps(prints["funding_time"], series.interval_h),
    }
    return prints, report


class FileSource:
    """MarketSource over a folder of funding exports (default: the real public sample shipped here).

    The exports carry funding rates only: markets have NaN volume, open interest and max
    leverage, and there are no bars.
    """

    name = "files"

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else SAMPLE_ROOT
        if not self.root.is_dir():
            raise FileNotFoundError(f"FileSource: {self.root} is not a folder")
        self._prints: dict[str, pd.DataFrame] | None = None
        self._reports: dict[str, dict[str, dict]] = {}

    def _load(self) -> dict[str, pd.DataFrame]:
        if self._prints is None:
            files = [parse_export(p, p.stat().st_mtime_ns) for p in export_paths(self.root)]
            fits = infer_offsets(files)
            by_venue: dict[str, list[pd.DataFrame]] = {}
            for f in files:
                prints, report = to_prints(f, fits[f.path].offset_h)
                if f.symbol in self._reports.get(f.venue, {}):
                    raise FileFormatError(f"{f.path.name}: a second file for {f.symbol} on {f.venue}")
                self._reports.setdefault(f.venue, {})[f.symbol] = report | {"file": f.path.name}
                by_venue.setdefault(f.venue, []).append(prints)
            self._prints = {v: pd.concat(frames, ignore_index=True) for v, frames in by_venue.items()}
        return self._prints

    def venues(self) -> tuple[str, ...]:
        return tuple(sorted(self._load()))

    def coverage(self, venue: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last UTC day with a print on `venue`."""
        check_venue(self, venue)
        times = self._load()[venue]["funding_time"]
        return times.min().normalize(), times.max().normalize()

    def import_report(self, venue: str) -> dict:
        """Per symbol: rows read, exact duplicates dropped, conflicting duplicates (first kept),
        clock offset applied (local = UTC + offset), interval and missing windows."""
        check_venue(self, venue)
        return {symbol: dict(report) for symbol, report in self._reports[venue].items()}

    def funding_prints(
        self, venue: str, start: pd.Timestamp, end: pd.Timestamp, symbol: str | None = None
    ) -> pd.DataFrame:
        check_venue(self, venue)
        prints = self._load()[venue]
        if symbol is not None:
            if symbol not in set(prints["symbol"]):
                raise UnknownVenueError(f"symbol {symbol!r} is not served for {venue!r} by the 'files' source")
            prints = prints[prints["symbol"] == symbol]
        in_range = (prints["funding_time"] >= to_utc([start])[0]) & (prints["funding_time"] < to_utc([end])[0])
        out = prints.loc[in_range]
        return out.reset_index(drop=True) if len(out) else empty_prints()

    def markets(self, venue: str, day: pd.Timestamp) -> pd.DataFrame:
        day_start = to_utc([day])[0].floor("D")
        prints = self.funding_prints(venue, day_start, day_start + pd.Timedelta(days=1))
        listed = prints.drop_duplicates("symbol")
        return pd.DataFrame(
            {
                "date": pd.Series([day_start] * len(listed), dtype="datetime64[ns, UTC]"),
                "venue": listed["venue"].to_numpy(dtype=object),
                "symbol": listed["symbol"].to_numpy(dtype=object),
                "base": listed["base"].to_numpy(dtype=object),
                "quote": [s.split(":")[-1] for s in listed["symbol"]],
                "interval_h": listed["interval_h"].to_numpy(dtype="float64"),
                "volume_usd_24h": np.full(len(listed), np.nan),
                "open_interest_usd": np.full(len(listed), np.nan),
                "max_leverage": np.full(len(listed), np.nan),
            },
            columns=MARKET_COLUMNS,
        )

    def bars(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        check_venue(self, venue)
        columns = {c: pd.Series(dtype="float64") for c in BAR_COLUMNS}
        for c in ("venue", "symbol", "base"):
            columns[c] = pd.Series(dtype="object")
        columns["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
        return pd.DataFrame(columns)[BAR_COLUMNS]
