"""MarketSource over funding-history files: venue REST exports, Binance archives, Tardis, ccxt, plain UTC, the sample.

Every file is read once per process (`sources.formats` detects its format by header), its
times taken as UTC unless its clock is configured (`clock="+3"`) or inferred (`clock="infer"`,
the shipped sample, `sources.clock`), floored to the venue's settlement grid, and merged per
venue × symbol: exact duplicates dropped, conflicting prints of one window counted and the first
kept (files in name order, rows in file order). A partition then costs a binary search.

A file that cannot be used fails only the partitions of its venue in the span it covers, with
its name and line; a file whose header matches no known format is skipped with a warning
naming it. The files carry funding rates only: markets have NaN volume, open interest and max
leverage, and there are no bars.

Over 500 lines on purpose: loading, merging and the MarketSource share one per-process cache and
its invariants; the format readers (`sources.formats`) and clock inference (`sources.clock`) are apart.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fund_pipeline.domain.contracts import market_terms
from fund_pipeline.domain.prints import (
    BAR_COLUMNS,
    MARKET_COLUMNS,
    MARKET_TERMS_COLUMNS,
    empty_prints,
    normalise_prints,
)
from fund_pipeline.domain.time import NS_PER_DAY, NS_PER_HOUR, floor_to_grid, utc_timestamp
from fund_pipeline.sources.base import UnknownVenueError, check_venue
from fund_pipeline.sources.clock import (
    ClockOffsetError,
    RateSeries,
    check_clock_stable,
    check_on_grid,
    detect_interval,
    infer_offsets,
)
from fund_pipeline.sources.formats import (
    FORMATS_BY_NAME,
    FileFormatError,
    UnrecognisedFileError,
    is_data_file,
    parse_file_name,
    read_records,
)
from fund_pipeline.venues.registry import ALL_VENUES, facts

__all__ = ["SAMPLE_ROOT", "ClockOffsetError", "FileFormatError", "FileSource", "FileSpec", "SourceConfigError"]

log = logging.getLogger(__name__)

SAMPLE_ROOT = Path(__file__).parent / "sample_data" / "real_funding"
# How far a file's own clock can be from UTC: a failed file's span is widened by this much.
MAX_CLOCK_OFFSET_NS = NS_PER_DAY


class SourceConfigError(ValueError):
    """The files source was configured with something it cannot use (no files, unknown clock, ...)."""


def parse_clock(clock: str) -> int | None:
    """`utc` → 0, `+3` / `-5` → whole hours (local = UTC + offset), `infer` → None."""
    text = str(clock).strip().lower()
    if text == "utc":
        return 0
    if text == "infer":
        return None
    try:
        offset = int(text)
    except ValueError:
        raise SourceConfigError(f"clock must be 'utc', 'infer' or whole hours like '+3'; got {clock!r}") from None
    if not -12 <= offset <= 14:
        raise SourceConfigError(f"clock offset {offset:+d}h is outside UTC-12 .. UTC+14")
    return offset


@dataclass(frozen=True)
class FileSpec:
    """One file and how to read it: what its format lacks (venue, symbol) and its clock."""

    path: Path
    venue: str | None = None
    symbol: str | None = None
    fmt: str | None = None
    clock: str = "utc"

    def key(self) -> tuple:
        stat = self.path.stat()
        return (str(self.path.resolve()), stat.st_mtime_ns, stat.st_size, self.venue, self.symbol, self.fmt, self.clock)


def expand(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Files under the given files and folders (folders recursively, data suffixes only); missing paths."""
    files, missing = [], []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if is_data_file(f))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(str(p))
    return files, missing


def specs_for(
    paths: Iterable[str | Path],
    venue: str | None = None,
    symbol: str | None = None,
    fmt: str | None = None,
    clock: str = "utc",
) -> list[FileSpec]:
    """FileSpecs for files and folders, refusing what cannot work before anything is read."""
    paths = list(paths)
    if not paths:
        raise SourceConfigError("the files source needs files_root: a folder of exports or the files themselves")
    if venue is not None and venue not in ALL_VENUES:
        raise SourceConfigError(f"venue {venue!r} is unknown; known venues are {list(ALL_VENUES)}")
    if fmt is not None and fmt not in FORMATS_BY_NAME:
        raise SourceConfigError(f"format {fmt!r} is unknown; known formats are {list(FORMATS_BY_NAME)}")
    parse_clock(clock)
    files, missing = expand(paths)
    if missing:
        raise SourceConfigError(f"files_root: {missing} do not exist")
    if not files:
        raise SourceConfigError(
            f"files_root: no data files ({', '.join(FORMATS_BY_NAME)}) under {list(map(str, paths))}"
        )
    return [FileSpec(f, venue, symbol, fmt, clock) for f in files]


@dataclass(frozen=True)
class Failure:
    """A file that could not be used: the partitions of `venue` in [lo_ns, hi_ns) fail with `message`."""

    file: str
    venue: str
    message: str
    lo_ns: int | None = None
    hi_ns: int | None = None

    def covers(self, start_ns: int, end_ns: int) -> bool:
        lo = self.lo_ns if self.lo_ns is not None else -(2**62)
        hi = self.hi_ns if self.hi_ns is not None else 2**62
        return lo < end_ns and start_ns < hi


@dataclass
class Loaded:
    """Everything read from one set of files: prints per venue sorted by funding time, and what happened."""

    prints: dict[str, pd.DataFrame] = field(default_factory=dict)
    times: dict[str, np.ndarray] = field(default_factory=dict)
    # per venue: the listing of every day (MARKET_COLUMNS, by date then symbol) and its days as int ns
    markets: dict[str, pd.DataFrame] = field(default_factory=dict)
    market_days: dict[str, np.ndarray] = field(default_factory=dict)
    reports: dict[str, dict[str, dict]] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)


@dataclass
class Group:
    """The records of one venue × symbol from one file."""

    name: str
    spec: FileSpec
    fmt: str
    venue: str
    symbol: str
    records: pd.DataFrame
    interval_h: np.ndarray
    offset_h: int = 0


def _failure_from(spec: FileSpec, exc: FileFormatError) -> Failure:
    venue = getattr(exc, "venue", None) or spec.venue or parse_file_name(spec.path).venue
    if venue is None:
        raise FileFormatError(f"{exc} (and its venue cannot be told, so it cannot be set apart: fix or remove it)")
    span = getattr(exc, "span_ns", None)
    if span is None:
        return Failure(spec.path.name, venue, str(exc))
    return Failure(spec.path.name, venue, str(exc), span[0] - MAX_CLOCK_OFFSET_NS, span[1] + MAX_CLOCK_OFFSET_NS)


def _intervals(group_name: str, records: pd.DataFrame, venue: str) -> np.ndarray:
    """Each record's interval: the file's own where it states one, else detected from the steps."""
    given = records["interval_h"].to_numpy(dtype="float64")
    if np.isfinite(given).all():
        return given
    hours = np.round(records["time"].to_numpy(dtype="int64") / NS_PER_HOUR).astype("int64")
    if len(np.unique(hours)) < 2:
        return np.where(np.isfinite(given), given, facts(venue).default_interval_h)
    try:
        detected = float(detect_interval(group_name, hours))
        return np.where(np.isfinite(given), given, detected)
    except ClockOffsetError:
        # Intervals changed within the file (Binance 8h → 4h): each print's gap, missing ones bridged.
        from fund_pipeline.sources.ccxt import intervals_from_gaps

        order = np.argsort(hours, kind="stable")
        ts = pd.Series(pd.to_datetime(hours[order] * NS_PER_HOUR, utc=True))
        gaps = intervals_from_gaps(ts, facts(venue).default_interval_h).to_numpy(dtype="float64")
        out = np.empty_like(gaps)
        out[order] = gaps
        return np.where(np.isfinite(given), given, out)


def _series(group: Group) -> RateSeries:
    hours = np.round(group.records["time"].to_numpy(dtype="int64") / NS_PER_HOUR).astype("int64")
    values, counts = np.unique(group.interval_h, return_counts=True)
    modal = int(round(values[counts.argmax()]))
    return RateSeries(
        hours, group.records["rate"].to_numpy(), max(modal, 1), int(facts(group.venue).settlement_phase_h)
    )


def _groups(spec: FileSpec, fmt: str, records: pd.DataFrame) -> list[Group]:
    out = []
    keys = records[["venue", "symbol"]].drop_duplicates().itertuples(index=False, name=None)
    pairs = list(keys)
    for venue, symbol in pairs:
        part = records.loc[(records["venue"] == venue) & (records["symbol"] == symbol)].reset_index(drop=True)
        name = spec.path.name if len(pairs) == 1 else f"{spec.path.name} [{venue} {symbol}]"
        out.append(Group(name, spec, fmt, venue, symbol, part, _intervals(name, part, venue)))
    return out


def _apply_clocks(groups: list[Group], loaded: Loaded) -> list[Group]:
    """Set each group's clock offset (fixed or inferred); groups whose clock does not fit fail."""
    inferred = [g for g in groups if parse_clock(g.spec.clock) is None]
    unknown: set[str] = set()
    if inferred:
        try:
            fits = infer_offsets({g.name: _series(g) for g in inferred}, {g.name: g.venue for g in inferred})
        except ClockOffsetError as exc:
            for g in inferred:
                _fail_group(g, f"clock inference failed: {exc}", loaded)
                unknown.add(g.name)
            fits = {}
        for name, fit in fits.items():
            next(g for g in inferred if g.name == name).offset_h = fit.offset_h
    kept = []
    for g in groups:
        if g.name in unknown:
            continue
        fixed = parse_clock(g.spec.clock)
        if fixed is not None:
            g.offset_h = fixed
        series = _series(g)
        try:
            if fixed is None:
                check_clock_stable(g.name, series)
            else:
                hours = series.hours - g.offset_h
                check_on_grid(g.name, RateSeries(hours, series.rates, series.interval_h, series.grid_phase_h))
        except ClockOffsetError as exc:
            _fail_group(g, str(exc), loaded)
            continue
        kept.append(g)
    return kept


def _fail_group(g: Group, message: str, loaded: Loaded) -> None:
    times = g.records["time"]
    lo, hi = int(times.min()) - MAX_CLOCK_OFFSET_NS, int(times.max()) + MAX_CLOCK_OFFSET_NS
    loaded.failures.setdefault(g.venue, []).append(Failure(g.spec.path.name, g.venue, message, lo, hi))


def count_gaps(funding_ns: np.ndarray, interval_h: np.ndarray) -> int:
    """Settlement windows missing between the first and last print."""
    if len(funding_ns) < 2:
        return 0
    steps = np.diff(funding_ns) / (interval_h[1:] * NS_PER_HOUR)
    return int(np.clip(np.round(steps) - 1, 0, None).sum())


def _merge(venue: str, symbol: str, groups: list[Group]) -> tuple[pd.DataFrame, dict]:
    """One venue × symbol from every file: on the grid, exact duplicates dropped, first of a window kept."""
    phase = facts(venue).settlement_phase_h
    frames = []
    for g in groups:
        utc = pd.Series(pd.to_datetime(g.records["time"].to_numpy() - g.offset_h * NS_PER_HOUR, utc=True))
        funding_time = floor_to_grid(utc, g.interval_h, phase)
        frames.append(
            pd.DataFrame(
                {
                    "funding_time": funding_time.astype("int64").to_numpy(),
                    "rate": g.records["rate"].to_numpy(),
                    "interval_h": g.interval_h,
                    "mark_price": g.records["mark_price"].to_numpy(),
                    "index_price": g.records["index_price"].to_numpy(),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    exact = frame.duplicated(["funding_time", "rate"])
    deduped = frame.loc[~exact]
    conflicting = deduped["funding_time"].duplicated()
    clean = deduped.loc[~conflicting].sort_values("funding_time", kind="stable")
    ft = clean["funding_time"].to_numpy(dtype="int64")
    intervals = clean["interval_h"].to_numpy(dtype="float64")
    offsets = sorted({g.offset_h for g in groups})
    values, counts = np.unique(intervals, return_counts=True)
    report = {
        "rows_read": len(frame),
        "duplicates_dropped": int(exact.sum()),
        "conflicts": int(conflicting.sum()),
        "offset_applied_h": offsets[0] if len(offsets) == 1 else offsets,
        "interval_h": float(values[counts.argmax()]),
        "gaps": count_gaps(ft, intervals),
        "files": sorted({g.spec.path.name for g in groups}),
        "formats": sorted({g.fmt for g in groups}),
    }
    n = len(clean)
    prints = pd.DataFrame(
        {
            "venue": np.full(n, venue, dtype=object),
            "symbol": np.full(n, symbol, dtype=object),
            "base": np.full(n, symbol.split("/")[0], dtype=object),
            "kind": np.full(n, "settled", dtype=object),
            "funding_time": ft,
            "ts": ft,
            "rate": clean["rate"].to_numpy(),
            "interval_h": intervals,
            "mark_price": clean["mark_price"].to_numpy(),
            "index_price": clean["index_price"].to_numpy(),
            "source": np.full(n, "file", dtype=object),
        }
    )
    return prints, report


def load(specs: Sequence[FileSpec]) -> Loaded:
    """Read, check, clock-correct and merge every file (the work done once per process)."""
    loaded = Loaded()
    groups: list[Group] = []
    for spec in sorted(specs, key=lambda s: s.path.name):
        try:
            fmt, records = read_records(spec.path, venue=spec.venue, symbol=spec.symbol, fmt=spec.fmt)
        except UnrecognisedFileError as exc:
            log.warning("skipped %s: %s", spec.path, exc)
            loaded.skipped.append((spec.path.name, str(exc)))
            continue
        except FileFormatError as exc:
            failure = _failure_from(spec, exc)
            loaded.failures.setdefault(failure.venue, []).append(failure)
            loaded.files.append({"file": spec.path.name, "status": "failed", "error": str(exc)})
            continue
        groups += _groups(spec, fmt.name, records)
        loaded.files.append({"file": spec.path.name, "status": "read", "format": fmt.name, "rows": len(records)})
    groups = _apply_clocks(groups, loaded)
    by_pair: dict[tuple[str, str], list[Group]] = {}
    for g in groups:
        by_pair.setdefault((g.venue, g.symbol), []).append(g)
    frames: dict[str, list[pd.DataFrame]] = {}
    for (venue, symbol), members in sorted(by_pair.items()):
        prints, report = _merge(venue, symbol, members)
        loaded.reports.setdefault(venue, {})[symbol] = report
        frames.setdefault(venue, []).append(prints)
    for venue, parts in frames.items():
        merged = pd.concat(parts, ignore_index=True).sort_values(["funding_time", "symbol"], kind="stable")
        loaded.times[venue] = merged["funding_time"].to_numpy(dtype="int64")
        loaded.prints[venue] = normalise_prints(merged)
        loaded.markets[venue] = daily_listing(merged)
        loaded.market_days[venue] = loaded.markets[venue]["date"].astype("int64").to_numpy()
    return loaded


def daily_listing(prints: pd.DataFrame) -> pd.DataFrame:
    """Every UTC day's markets: each symbol with a print that day, at that day's first interval, margined as its
    unified symbol says (contract size unknown for an inverse contract: files do not state it)."""
    day_ns = prints["funding_time"].to_numpy(dtype="int64") // NS_PER_DAY * NS_PER_DAY
    frame = pd.DataFrame({"day": day_ns, "symbol": prints["symbol"].to_numpy(), "interval_h": prints["interval_h"]})
    first = frame.drop_duplicates(["day", "symbol"]).sort_values(["day", "symbol"], kind="stable")
    n = len(first)
    symbols = first["symbol"].to_numpy(dtype=object)
    terms = market_terms(pd.Series(symbols, dtype=object))
    return pd.DataFrame(
        {
            "date": pd.to_datetime(first["day"].to_numpy(), utc=True).astype("datetime64[ns, UTC]"),
            "venue": prints["venue"].iloc[:n].to_numpy(dtype=object) if n else np.array([], dtype=object),
            "symbol": symbols,
            "base": np.array([s.split("/")[0] for s in symbols], dtype=object),
            "quote": np.array([s.split("/")[1].split(":")[0] for s in symbols], dtype=object),
            "interval_h": first["interval_h"].to_numpy(dtype="float64"),
            "volume_usd_24h": np.full(n, np.nan),
            "open_interest_usd": np.full(n, np.nan),
            "max_leverage": np.full(n, np.nan),
            **{name: terms[name].to_numpy() for name in MARKET_TERMS_COLUMNS},
        },
        columns=MARKET_COLUMNS,
    )


_LOADED: dict[tuple, Loaded] = {}


def cache_key(specs: Sequence[FileSpec]) -> tuple:
    """What `load_cached` keys on: every file's path, modification time and size, and its options."""
    return tuple(sorted(s.key() for s in specs))


def load_cached(specs: Sequence[FileSpec]) -> Loaded:
    """`load`, once per process per set of files and options (a changed file is read again)."""
    key = cache_key(specs)
    if key not in _LOADED:
        _LOADED[key] = load(specs)
    return _LOADED[key]


class FileSource:
    """MarketSource over funding files; `FileSource.from_paths(...)` or from an import manifest."""

    name = "files"

    def __init__(self, specs: Sequence[FileSpec]):
        if not specs:
            raise SourceConfigError("the files source needs at least one file")
        self.specs = list(specs)
        self._loaded: Loaded | None = None

    @classmethod
    def from_paths(
        cls,
        paths: str | Path | Sequence[str | Path],
        *,
        venue: str | None = None,
        symbol: str | None = None,
        fmt: str | None = None,
        clock: str = "utc",
    ) -> FileSource:
        """Files and folders (a string may join several with os.pathsep); venue/symbol for formats without them."""
        if isinstance(paths, str):
            paths = [p for p in paths.split(os.pathsep) if p]
        elif isinstance(paths, Path):
            paths = [paths]
        return cls(specs_for(paths, venue=venue, symbol=symbol, fmt=fmt, clock=clock))

    @classmethod
    def sample(cls) -> FileSource:
        """The real public sample shipped with the package: wall-clock dates, so its clock is inferred."""
        return cls.from_paths([SAMPLE_ROOT], clock="infer")

    @classmethod
    def from_manifest(cls, manifest: str | Path) -> FileSource:
        """Every import recorded in a manifest (`fund-pipeline import` writes one), each with its options."""
        path = Path(manifest)
        if not path.is_file():
            raise SourceConfigError(f"files_manifest: {path} does not exist; run `fund-pipeline import PATH...` first")
        specs: list[FileSpec] = []
        for entry in json.loads(path.read_text())["imports"]:
            specs += specs_for(
                entry["paths"],
                venue=entry.get("venue"),
                symbol=entry.get("symbol"),
                fmt=entry.get("format"),
                clock=entry.get("clock", "utc"),
            )
        return cls(specs)

    def _load(self) -> Loaded:
        if self._loaded is None:
            self._loaded = load_cached(self.specs)
        return self._loaded

    def venues(self) -> tuple[str, ...]:
        loaded = self._load()
        return tuple(sorted(set(loaded.prints) | set(loaded.failures)))

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Files skipped because their header matches no known format, with the reason."""
        return list(self._load().skipped)

    def failures(self, venue: str | None = None) -> list[Failure]:
        loaded = self._load()
        return [f for v, fs in sorted(loaded.failures.items()) if venue in (None, v) for f in fs]

    def file_report(self) -> list[dict]:
        """Per file: format and rows read, or why it failed."""
        return [dict(f) for f in self._load().files]

    def coverage(self, venue: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last UTC day with a print on `venue`."""
        check_venue(self, venue)
        self._raise_failed(venue, -(2**62), 2**62)
        times = self._load().times[venue]
        first, last = utc_timestamp(pd.Timestamp(int(times[0]))), utc_timestamp(pd.Timestamp(int(times[-1])))
        return first.normalize(), last.normalize()

    def import_report(self, venue: str) -> dict:
        """Per symbol: rows read, exact duplicates dropped, conflicting duplicates (first kept),
        clock offset applied (local = UTC + offset), interval, missing windows, files and formats."""
        check_venue(self, venue)
        return {symbol: dict(report) for symbol, report in self._load().reports.get(venue, {}).items()}

    def prints_of(self, venue: str) -> pd.DataFrame:
        """Every print the readable files hold for `venue`, sorted by funding time (failed files aside)."""
        check_venue(self, venue)
        return self._load().prints.get(venue, empty_prints())

    def _raise_failed(self, venue: str, start_ns: int, end_ns: int) -> None:
        hit = [f for f in self._load().failures.get(venue, []) if f.covers(start_ns, end_ns)]
        if hit:
            raise FileFormatError("; ".join(f.message for f in hit))

    def _slice(self, venue: str, start, end) -> pd.DataFrame:
        check_venue(self, venue)
        lo, hi = utc_timestamp(start).value, utc_timestamp(end).value
        self._raise_failed(venue, lo, hi)
        loaded = self._load()
        if venue not in loaded.prints:
            return empty_prints()
        times = loaded.times[venue]
        i, j = np.searchsorted(times, [lo, hi], side="left")
        return loaded.prints[venue].iloc[i:j]

    def funding_prints(self, venue: str, start, end, symbol: str | None = None) -> pd.DataFrame:
        prints = self._slice(venue, start, end)
        if symbol is not None:
            if symbol not in self._load().reports.get(venue, {}):
                raise UnknownVenueError(f"symbol {symbol!r} is not served for {venue!r} by the 'files' source")
            prints = prints.loc[prints["symbol"] == symbol]
        if not len(prints):
            return empty_prints()
        # By symbol, then time: the slice is in time order and a symbol has one print per time, so a
        # stable sort by symbol alone gives it (a multi-column sort_values costs ms per call).
        order = np.argsort(prints["symbol"].to_numpy(), kind="stable")
        return prints.take(order).reset_index(drop=True)

    def markets(self, venue: str, day) -> pd.DataFrame:
        day_start = utc_timestamp(day).floor("D")
        lo = int(day_start.value)
        check_venue(self, venue)
        self._raise_failed(venue, lo, lo + NS_PER_DAY)
        loaded = self._load()
        if venue not in loaded.markets:
            return daily_listing(empty_prints())
        i, j = np.searchsorted(loaded.market_days[venue], [lo, lo + NS_PER_DAY], side="left")
        return loaded.markets[venue].iloc[i:j].reset_index(drop=True)

    def bars(self, venue: str, start, end) -> pd.DataFrame:
        check_venue(self, venue)
        columns = {c: pd.Series(dtype="float64") for c in BAR_COLUMNS}
        for c in ("venue", "symbol", "base"):
            columns[c] = pd.Series(dtype="object")
        columns["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
        return pd.DataFrame(columns)[BAR_COLUMNS]
