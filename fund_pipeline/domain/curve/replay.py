"""Funding term-structure curves: a streaming builder and a vectorised replay with the same semantics.

One builder per venue × symbol keeps a ring of the last `N_BUCKETS` funding windows. Bucket 0 is
the newest window (the predicted rate while live, the settled one in history); bucket k is the
window k rolls earlier. The earlier buckets are past prints ("fossil" quotes), not forward rates.

Rules, shared by every path (`FundingCurveBuilder.update`, `.update_batch`, `replay_curves`):

* same funding_time as bucket 0 → the print replaces bucket 0;
* later funding_time → roll: the ring shifts and the print opens bucket 0. The very first print of
  a stream opens the first window and counts as a roll;
* a jump of Δ skips max(0, round(Δ / interval_new) − 1) windows: they are interpolated linearly in
  annualised-yield space between the old bucket 0 and the new print, take the new interval, are
  flagged in `interpolated_mask` and counted in `BuilderStats.interpolated`;
* earlier funding_time → late print: counted, never applied, never emits a snapshot;
* snapshots: "roll" (after every roll), "every_n_seconds" (on roll, and on an applied print whose
  ts is ≥ N s after the stream's last snapshot), "every_update" (after every applied print).

Every bucket is annualised with its own interval. The paths are bit-identical because all
transcendental maths goes through the same numpy functions (`annualise`, `deannualise`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from fund_pipeline.domain.prints import annualise, deannualise, require_columns, to_utc

N_BUCKETS = 8
NS_PER_HOUR = 3_600_000_000_000
SNAPSHOT_MODES = ("roll", "every_n_seconds", "every_update")

RATE_COLUMNS = [f"b{k}" for k in range(N_BUCKETS)]
ANN_COLUMNS = [f"b{k}_ann" for k in range(N_BUCKETS)]
CURVE_COLUMNS = [
    "venue",
    "symbol",
    "ts_snap",
    "funding_time",
    "interval_h",
    *RATE_COLUMNS,
    *ANN_COLUMNS,
    "level",
    "slope",
    "curvature",
    "n_filled",
    "interpolated_mask",
]
PRINT_INPUT_COLUMNS = ["venue", "symbol", "funding_time", "ts", "rate", "interval_h"]

# Running-maximum sentinel for "no window yet": below every valid nanosecond timestamp (NaT is rejected).
_NO_WINDOW = np.iinfo(np.int64).min
_BUCKET_INDEX = np.arange(N_BUCKETS)
_MASK_BITS = np.left_shift(1, _BUCKET_INDEX).astype(np.int64)


@dataclass(frozen=True)
class SnapshotPolicy:
    """When a builder emits a snapshot; `seconds` is used by "every_n_seconds" only."""

    mode: str = "roll"
    seconds: float = 600.0

    def __post_init__(self):
        if self.mode not in SNAPSHOT_MODES:
            raise ValueError(f"SnapshotPolicy: unknown mode {self.mode!r}; expected one of {SNAPSHOT_MODES}")
        if not (isinstance(self.seconds, (int, float)) and math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"SnapshotPolicy: seconds must be a finite number > 0, got {self.seconds!r}")

    @property
    def every_ns(self) -> int:
        return int(round(self.seconds * 1e9))


@dataclass
class BuilderStats:
    """What happened to a stream's prints: nothing is dropped silently."""

    prints: int = 0
    replaced: int = 0
    rolls: int = 0
    late: int = 0
    interpolated: int = 0


# --- numerics shared by every path (identical numpy calls keep the paths bit-identical) -------------


def skipped_windows(delta_ns, interval_h) -> np.ndarray:
    """Windows missing between two funding times Δ apart, counted in the new interval."""
    steps = np.rint(np.asarray(delta_ns, dtype=np.float64) / (np.asarray(interval_h, dtype=np.float64) * NS_PER_HOUR))
    return np.maximum(steps - 1.0, 0.0).astype(np.int64)


def interpolated_rates(ann_old, ann_new, n_skipped, position, interval_new) -> np.ndarray:
    """Rate of skipped window `position` (1 = right after the old window) of `n_skipped`, linear in annualised yield."""
    fraction = np.asarray(position, dtype=np.float64) / (np.asarray(n_skipped, dtype=np.float64) + 1.0)
    ann_old = np.asarray(ann_old, dtype=np.float64)
    return deannualise(ann_old + (np.asarray(ann_new, dtype=np.float64) - ann_old) * fraction, interval_new)


def _check_values(rate: np.ndarray, interval_h: np.ndarray, what: str) -> None:
    """Reject rates/intervals that would poison every annualised number downstream.

    Min/max reductions (NaN fails every comparison) keep the common, valid case to four fast passes.
    """
    if rate.size == 0 or (
        rate.min() > -1.0 and rate.max() < np.inf and interval_h.min() > 0 and interval_h.max() < np.inf
    ):
        return
    bad = ~np.isfinite(rate) | (rate <= -1.0) | ~np.isfinite(interval_h) | (interval_h <= 0)
    i = int(np.argmax(bad))
    raise ValueError(
        f"{what}: {int(bad.sum())} print(s) with unusable values (rate must be finite and > -1, "
        f"interval_h finite and > 0); first at position {i}: rate={rate[i]!r}, interval_h={interval_h[i]!r}"
    )


def _check_times(ns: np.ndarray, column: str, what: str) -> None:
    if ns.size and ns.min() == _NO_WINDOW:
        raise ValueError(f"{what}: {column} has missing (NaT) values at position {int(np.argmax(ns == _NO_WINDOW))}")


def _last_applied_at_or_before(late_pos: np.ndarray, q: np.ndarray) -> np.ndarray:
    """For each position q, the last position ≤ q that is not a late print (−1 when none).

    Late prints come in runs; a late q maps to the position just before its run.
    """
    q = np.asarray(q, dtype=np.int64)
    if late_pos.size == 0:
        return q
    run_head = np.ones(late_pos.size, dtype=bool)
    run_head[1:] = np.diff(late_pos) != 1
    run_start = late_pos[np.maximum.accumulate(np.where(run_head, np.arange(late_pos.size), 0))]
    i = np.searchsorted(late_pos, q, side="right") - 1
    hit = (i >= 0) & (late_pos[np.maximum(i, 0)] == q)
    return np.where(hit, run_start[np.maximum(i, 0)] - 1, q)


def _due_positions(ts: np.ndarray, late: np.ndarray, lo: int, hi: int, last_ts: int | None, every_ns: int) -> list[int]:
    """Positions in [lo, hi) where "every_n_seconds" emits: an applied print ≥ every_ns after the last snapshot."""
    if hi <= lo:
        return []
    applied_ts = np.where(late[lo:hi], _NO_WINDOW, ts[lo:hi])
    running_max = np.maximum.accumulate(applied_ts)
    due, i = [], 0
    if last_ts is None:
        applied = np.flatnonzero(applied_ts != _NO_WINDOW)
        if applied.size == 0:
            return []
        i = int(applied[0])
        due.append(lo + i)
        last_ts = int(ts[lo + i])
        i += 1
    size = hi - lo
    while i < size:
        target = last_ts + every_ns
        if i > 0 and running_max[i - 1] >= target:
            # ts went backwards earlier in the window: the running maximum cannot be searched.
            found = np.flatnonzero(applied_ts[i:] >= target)
            if found.size == 0:
                break
            j = i + int(found[0])
        else:
            j = i + int(np.searchsorted(running_max[i:], target, side="left"))
            if j >= size:
                break
        due.append(lo + j)
        last_ts = int(ts[lo + j])
        i = j + 1
    return due


# --- the streaming builder ---------------------------------------------------------------------------


class FundingCurveBuilder:
    """The live curve of one venue × symbol, fed print by print (or batch by batch)."""

    def __init__(self, venue: str, symbol: str, policy: SnapshotPolicy = SnapshotPolicy()):
        if not isinstance(policy, SnapshotPolicy):
            raise TypeError(f"FundingCurveBuilder: policy must be a SnapshotPolicy, got {type(policy).__name__}")
        self.venue = venue
        self.symbol = symbol
        self.policy = policy
        self.stats = BuilderStats()
        self._every_ns = policy.every_ns
        self._last_snap_ts: int | None = None
        self._clear_ring()

    def _clear_ring(self) -> None:
        self._funding_time: int | None = None
        self._rates = [math.nan] * N_BUCKETS
        self._intervals = [math.nan] * N_BUCKETS
        self._interpolated = [False] * N_BUCKETS
        self._n_filled = 0

    def _roll(self, funding_time: int, rate: float, interval_h: float) -> int:
        """Open a new window in bucket 0, interpolating skipped ones; returns how many were skipped."""
        if self._funding_time is None:
            n_skipped = 0
        else:
            n_skipped = int(skipped_windows(funding_time - self._funding_time, interval_h))
        kept = min(n_skipped, N_BUCKETS - 1)
        if kept:
            positions = np.arange(n_skipped - kept + 1, n_skipped + 1, dtype=np.float64)
            filled = interpolated_rates(
                annualise(self._rates[0], self._intervals[0]),
                annualise(rate, interval_h),
                n_skipped,
                positions,
                interval_h,
            )[::-1].tolist()
        else:
            filled = []
        keep_old = N_BUCKETS - 1 - kept
        self._rates = [rate, *filled, *self._rates[:keep_old]]
        self._intervals = [interval_h, *([interval_h] * kept), *self._intervals[:keep_old]]
        self._interpolated = [False, *([True] * kept), *self._interpolated[:keep_old]]
        self._n_filled = min(N_BUCKETS, self._n_filled + 1 + kept)
        self._funding_time = funding_time
        return n_skipped

    def _replace(self, rate: float, interval_h: float) -> None:
        self._rates[0] = rate
        self._intervals[0] = interval_h

    def _count_roll(self, n_skipped: int) -> None:
        self.stats.rolls += 1
        self.stats.interpolated += n_skipped

    def _emit(self, ts: int) -> tuple:
        self._last_snap_ts = ts
        return self.snapshot(ts)

    def update(self, funding_time_ns: int, rate: float, interval_h: float, ts_ns: int) -> tuple | None:
        """Apply one print; return a snapshot row (CURVE_COLUMNS order, times in ns) when the policy says so."""
        rate, interval_h = float(rate), float(interval_h)
        funding_time, ts = int(funding_time_ns), int(ts_ns)
        if not (rate > -1.0 and interval_h > 0 and math.isfinite(rate) and math.isfinite(interval_h)):
            _check_values(np.array([rate]), np.array([interval_h]), f"{self.venue} {self.symbol}")
        if funding_time == _NO_WINDOW or ts == _NO_WINDOW:
            _check_times(np.array([funding_time, ts]), "funding_time/ts", f"{self.venue} {self.symbol}")
        self.stats.prints += 1
        if self._funding_time is not None and funding_time < self._funding_time:
            self.stats.late += 1
            return None
        rolled = self._funding_time is None or funding_time > self._funding_time
        if rolled:
            self._count_roll(self._roll(funding_time, rate, interval_h))
        else:
            self.stats.replaced += 1
            self._replace(rate, interval_h)
        mode = self.policy.mode
        if (
            rolled
            or mode == "every_update"
            or (mode == "every_n_seconds" and (self._last_snap_ts is None or ts - self._last_snap_ts >= self._every_ns))
        ):
            return self._emit(ts)
        return None

    def update_batch(self, funding_time_ns, rate, interval_h, ts_ns) -> list[tuple]:
        """`update` over arrays in arrival order: rolls are found with numpy, Python runs only per roll/snapshot."""
        funding_time = np.asarray(funding_time_ns, dtype=np.int64)
        rate = np.asarray(rate, dtype=np.float64)
        interval_h = np.asarray(interval_h, dtype=np.float64)
        ts = np.asarray(ts_ns, dtype=np.int64)
        n = funding_time.size
        if not (rate.size == interval_h.size == ts.size == n):
            raise ValueError(
                f"{self.venue} {self.symbol}: update_batch arrays differ in length ({n}, {rate.size}, {interval_h.size}, {ts.size})"
            )
        if n == 0:
            return []
        _check_values(rate, interval_h, f"{self.venue} {self.symbol}")
        _check_times(funding_time, "funding_time", f"{self.venue} {self.symbol}")
        _check_times(ts, "ts", f"{self.venue} {self.symbol}")
        start = _NO_WINDOW if self._funding_time is None else self._funding_time
        previous = np.empty(n, dtype=np.int64)
        previous[0] = start
        np.maximum(np.maximum.accumulate(funding_time[:-1]), start, out=previous[1:])
        late = funding_time < previous
        rolled = funding_time > previous
        late_pos = np.flatnonzero(late)
        roll_pos = np.flatnonzero(rolled)
        self.stats.prints += n
        self.stats.late += late_pos.size
        self.stats.replaced += n - late_pos.size - roll_pos.size

        if self.policy.mode == "every_update":
            rows = []
            for p, is_roll in zip(np.flatnonzero(~late).tolist(), rolled[~late].tolist()):
                if is_roll:
                    self._count_roll(self._roll(int(funding_time[p]), float(rate[p]), float(interval_h[p])))
                else:
                    self._replace(float(rate[p]), float(interval_h[p]))
                rows.append(self._emit(int(ts[p])))
            return rows

        timed = self.policy.mode == "every_n_seconds"
        before_roll = _last_applied_at_or_before(late_pos, roll_pos - 1).tolist()
        segment_ends = [*roll_pos.tolist()[1:], n]
        rows = []
        if timed and self._funding_time is not None:
            rows += self._replay_due(funding_time, rate, interval_h, ts, late, 0, roll_pos[0] if roll_pos.size else n)
        for p, q, end in zip(roll_pos.tolist(), before_roll, segment_ends):
            if q >= 0:
                self._replace(float(rate[q]), float(interval_h[q]))
            self._count_roll(self._roll(int(funding_time[p]), float(rate[p]), float(interval_h[p])))
            rows.append(self._emit(int(ts[p])))
            if timed:
                rows += self._replay_due(funding_time, rate, interval_h, ts, late, p + 1, end)
        last = int(_last_applied_at_or_before(late_pos, np.array([n - 1]))[0])
        if last >= 0:
            self._replace(float(rate[last]), float(interval_h[last]))
        return rows

    def _replay_due(self, funding_time, rate, interval_h, ts, late, lo: int, hi: int) -> list[tuple]:
        rows = []
        for j in _due_positions(ts, late, lo, hi, self._last_snap_ts, self._every_ns):
            self._replace(float(rate[j]), float(interval_h[j]))
            rows.append(self._emit(int(ts[j])))
        return rows

    def seed(self, settled: pd.DataFrame) -> None:
        """Warm start from settled history: rebuild the ring from it (stats and snapshot timer untouched).

        The live collector seeds each builder before its first predicted print, so bucket 1..7 hold
        real settled windows instead of NaN.
        """
        require_columns(settled, ["funding_time", "rate", "interval_h"], f"seed {self.venue} {self.symbol}")
        for column, expected in (("venue", self.venue), ("symbol", self.symbol)):
            if column in settled.columns:
                other = set(settled[column].unique()) - {expected}
                if other:
                    raise ValueError(
                        f"seed {self.venue} {self.symbol}: prints of other {column}(s) {sorted(map(str, other))}"
                    )
        order = ["funding_time", "ts"] if "ts" in settled.columns else ["funding_time"]
        ordered = settled.sort_values(order, kind="stable")
        funding_time = _to_ns(ordered["funding_time"])
        _check_times(funding_time, "funding_time", f"seed {self.venue} {self.symbol}")
        rate = ordered["rate"].to_numpy(dtype=np.float64)
        interval_h = ordered["interval_h"].to_numpy(dtype=np.float64)
        _check_values(rate, interval_h, f"seed {self.venue} {self.symbol}")
        self._clear_ring()
        for ft, r, ih in zip(funding_time.tolist(), rate.tolist(), interval_h.tolist()):
            if self._funding_time is not None and ft == self._funding_time:
                self._replace(r, ih)
            else:
                self._roll(ft, r, ih)

    def snapshot(self, ts_ns: int) -> tuple:
        """The current curve as a CURVE_COLUMNS row (ts_snap and funding_time in ns since the epoch)."""
        if self._funding_time is None:
            raise ValueError(f"{self.venue} {self.symbol}: no print yet, there is no curve to snapshot")
        ann = annualise(self._rates, self._intervals)
        level = ann[0]
        mask = sum(1 << k for k, flag in enumerate(self._interpolated) if flag)
        return (
            self.venue,
            self.symbol,
            int(ts_ns),
            self._funding_time,
            self._intervals[0],
            *self._rates,
            *ann.tolist(),
            float(level),
            float(ann[7] - level),
            float(ann[2] + ann[5] - 2.0 * ann[3]),
            self._n_filled,
            mask,
        )


# --- frames --------------------------------------------------------------------------------------------


def _to_ns(times: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch as int64 (no copy when the column already is datetime64[ns, UTC])."""
    if str(times.dtype) != "datetime64[ns, UTC]":
        times = to_utc(times)
    return times.array.asi8


def _curve_frame(columns: dict) -> pd.DataFrame:
    """One place that fixes the output dtypes, so every path returns the same frame."""
    frame = pd.DataFrame(
        {
            "venue": np.asarray(columns["venue"], dtype=object),
            "symbol": np.asarray(columns["symbol"], dtype=object),
            "ts_snap": pd.to_datetime(np.asarray(columns["ts_snap"], dtype=np.int64), utc=True),
            "funding_time": pd.to_datetime(np.asarray(columns["funding_time"], dtype=np.int64), utc=True),
            **{
                c: np.asarray(columns[c], dtype=np.float64)
                for c in ["interval_h", *RATE_COLUMNS, *ANN_COLUMNS, "level", "slope", "curvature"]
            },
            "n_filled": np.asarray(columns["n_filled"], dtype=np.int64),
            "interpolated_mask": np.asarray(columns["interpolated_mask"], dtype=np.int64),
        }
    )
    return frame[CURVE_COLUMNS]


def snapshots_frame(rows: list[tuple]) -> pd.DataFrame:
    """Snapshot rows from builders as a CURVE_COLUMNS frame with UTC timestamps."""
    transposed = list(zip(*rows)) if rows else [[] for _ in CURVE_COLUMNS]
    return _curve_frame(dict(zip(CURVE_COLUMNS, transposed)))


@dataclass
class _Streams:
    """A prints frame as arrays in arrival order, each print tagged with its stream's `key`.

    A key is venue code × n symbols + symbol code, with both codes numbered in label order, so keys
    sort like (venue, symbol): stream s (numbered in that order) has key `stream_keys[s]`. Keys are
    1–2 bytes per print and are never mapped to stream numbers print by print (that gather alone
    costs as much as a pass over the funding times).
    """

    venues: np.ndarray
    symbols: np.ndarray
    stream_keys: np.ndarray
    key: np.ndarray
    bounds: np.ndarray  # stream s owns positions bounds[s]:bounds[s+1] of `stream_order()`
    funding_time: np.ndarray
    ts: np.ndarray
    rate: np.ndarray
    interval_h: np.ndarray

    def stream_of(self, key: np.ndarray) -> np.ndarray:
        """Stream numbers of some keys (for a few prints: a binary search each)."""
        return np.searchsorted(self.stream_keys, key)

    def subset(self, rows: np.ndarray) -> _Streams:
        """The given arrival indices (increasing), with the same stream numbering."""
        key = self.key[rows]
        bounds = np.zeros(self.bounds.size, dtype=np.int64)
        np.cumsum(np.bincount(self.stream_of(key), minlength=self.bounds.size - 1), out=bounds[1:])
        return _Streams(
            self.venues,
            self.symbols,
            self.stream_keys,
            key,
            bounds,
            self.funding_time[rows],
            self.ts[rows],
            self.rate[rows],
            self.interval_h[rows],
        )

    def is_grouped(self) -> bool:
        """Whether the prints already lie stream after stream in stream order (frames read ORDER BY venue, symbol, ts)."""
        return bool(np.all(self.key[1:] >= self.key[:-1]))

    def stream_order(self) -> np.ndarray | None:
        """Arrival indices stream after stream, arrival order kept within each; None when they already lie so.

        The stable sort is skipped whenever each stream's prints are contiguous, which one comparison
        pass over the 1–2-byte keys finds out.
        """
        if self.is_grouped():
            return None
        key = self.key
        steps = key[1:] != key[:-1]
        if np.count_nonzero(steps) + 1 != self.stream_keys.size:
            return np.argsort(key, kind="stable")
        run_start = np.concatenate(([0], np.flatnonzero(steps) + 1))
        run_end = np.append(run_start[1:], key.size)
        return np.concatenate([np.arange(run_start[r], run_end[r]) for r in np.argsort(key[run_start]).tolist()])

    @classmethod
    def from_frame(cls, prints: pd.DataFrame, what: str) -> _Streams:
        require_columns(prints, PRINT_INPUT_COLUMNS, what)
        funding_time = _to_ns(prints["funding_time"])
        ts = _to_ns(prints["ts"])
        _check_times(funding_time, "funding_time", what)
        _check_times(ts, "ts", what)
        rate = prints["rate"].to_numpy(dtype=np.float64)
        interval_h = prints["interval_h"].to_numpy(dtype=np.float64)
        _check_values(rate, interval_h, what)
        venue_code, venues = _label_codes(prints["venue"], "venue", what)
        symbol_code, symbols = _label_codes(prints["symbol"], "symbol", what)
        n_symbols = len(symbols)
        key_type = np.min_scalar_type(max(len(venues) * n_symbols - 1, 0))
        key = symbol_code.astype(key_type)
        if len(venues) > 1:
            key += venue_code.astype(key_type) * key_type.type(n_symbols)
        counts = _key_counts(key, len(venues) * n_symbols)
        stream_keys = np.flatnonzero(counts).astype(key_type)
        bounds = np.zeros(stream_keys.size + 1, dtype=np.int64)
        np.cumsum(counts[stream_keys], out=bounds[1:])
        return cls(
            venues=venues[stream_keys // n_symbols],
            symbols=symbols[stream_keys % n_symbols],
            stream_keys=stream_keys,
            key=key,
            bounds=bounds,
            funding_time=funding_time,
            ts=ts,
            rate=rate,
            interval_h=interval_h,
        )


def _label_codes(column: pd.Series, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a text column numbered in label order, and the labels (object array).

    Categorical and pyarrow dictionary columns reuse their codes: hashing millions of strings is
    most of the cost of a replay otherwise. Their codes are renumbered (one gather) only when the
    categories are not sorted.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, labels = column.array.codes, np.asarray(column.cat.categories, dtype=object)
    elif isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_dictionary(column.dtype.pyarrow_dtype):
        codes, labels = dictionary_codes(column)
    else:
        codes, labels = pd.factorize(column, sort=True)
        labels = np.asarray(labels, dtype=object)
    if codes.size and codes.min() < 0:
        raise ValueError(f"{what}: {name} is missing at position {int(np.argmax(codes < 0))}")
    order = np.argsort(labels, kind="stable")
    if np.any(order[1:] < order[:-1]):
        rank = np.empty(order.size, dtype=np.min_scalar_type(max(order.size - 1, 0)))
        rank[order] = np.arange(order.size)
        codes, labels = rank[codes], labels[order]
    return codes, labels


def dictionary_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Indices and dictionary of a pyarrow dictionary column (missing values as code −1).

    Chunks get one shared dictionary; duplicate or null dictionary entries are merged by factorising
    the dictionary, which is small.
    """
    chunked = column.array.__arrow_array__().unify_dictionaries()
    if chunked.num_chunks == 0:
        return np.zeros(0, dtype=np.int8), np.zeros(0, dtype=object)
    indices = [chunk.indices.fill_null(-1).to_numpy() for chunk in chunked.chunks]
    codes = indices[0] if len(indices) == 1 else np.concatenate(indices)
    entry_code, labels = pd.factorize(chunked.chunk(0).dictionary.to_numpy(zero_copy_only=False))
    if not np.array_equal(entry_code, np.arange(entry_code.size)):
        codes = np.where(codes < 0, -1, entry_code[codes])
    return codes, np.asarray(labels, dtype=object)


def _key_counts(key: np.ndarray, n_keys: int) -> np.ndarray:
    """Prints per key. For 1–2-byte keys a radix sort and a binary search per key beat `np.bincount`,
    which first widens every key to 8 bytes."""
    if key.dtype.itemsize > 2:
        return np.bincount(key, minlength=n_keys)
    at_or_below = np.searchsorted(np.sort(key, kind="stable"), np.arange(n_keys, dtype=key.dtype), side="right")
    return np.diff(at_or_below, prepend=0)


def build_curves_streaming(
    prints: pd.DataFrame, policy: SnapshotPolicy = SnapshotPolicy()
) -> tuple[pd.DataFrame, dict]:
    """Feed each stream's prints (row order = arrival order) to its own builder; snapshots and stats per stream."""
    streams = _Streams.from_frame(prints, "build_curves_streaming")
    rows, stats, order = [], {}, streams.stream_order()
    for s, (lo, hi) in enumerate(zip(streams.bounds[:-1].tolist(), streams.bounds[1:].tolist())):
        builder = FundingCurveBuilder(streams.venues[s], streams.symbols[s], policy)
        idx = slice(lo, hi) if order is None else order[lo:hi]
        rows += builder.update_batch(
            streams.funding_time[idx], streams.rate[idx], streams.interval_h[idx], streams.ts[idx]
        )
        stats[(builder.venue, builder.symbol)] = builder.stats
    return snapshots_frame(rows), stats


def replay_curves(prints: pd.DataFrame, policy: SnapshotPolicy = SnapshotPolicy()) -> tuple[pd.DataFrame, dict]:
    """The builders' output computed for all streams at once with numpy index arithmetic.

    Streams are laid end to end (stable sort keeps arrival order; skipped when the frame already is
    grouped by stream); a running maximum of funding_time per stream classifies each print as
    roll / replace / late; the ring of every snapshot is read from a table of closed windows (real
    and interpolated) by index. Under the "roll" policy the replaces no snapshot can see are dropped
    first (see `_observable_rows`). For speed at scale pass `venue`/`symbol` as categoricals (or
    pyarrow dictionaries): the output is the same.
    """
    streams = _Streams.from_frame(prints, "replay_curves")
    if streams.key.size == 0:
        return snapshots_frame([]), {}
    unseen = np.zeros(streams.bounds.size - 1, dtype=np.int64)
    if policy.mode == "roll":
        rows, unseen = _observable_rows(streams)
        streams = streams.subset(rows)
    columns, stats = _replay(streams, policy)
    for stat, extra in zip(stats.values(), unseen.tolist()):
        stat.prints += extra
        stat.replaced += extra
    return _curve_frame(columns), stats


# Arrivals scanned at a time by `_observable_rows`: small enough to stay in cache.
_REDUCTION_BLOCK_ROWS = 16_384
# First window of the backward search for a stream's previous print (interleaved streams: a few rows back).
_SEARCH_FIRST_ROWS = 256


def _observable_rows(streams: _Streams) -> tuple[np.ndarray, np.ndarray]:
    """Arrival indices that can change a "roll" snapshot, and per stream how many replaces were left out.

    A replace followed (in its stream) by another replace is overwritten before any roll could see
    it and does not move the running maximum, so dropping it changes nothing but the count.
    Block by block, each print is compared with its stream's running maximum of funding time at the
    block start (one gather and one comparison, no sort): while they are equal every print is such a
    replace. From the first print that differs to the block end, the streams concerned are grouped
    and classified print by print; a stream segment where funding time goes back (late prints) is
    kept whole for the exact replay. The last print of each stream, and the print before a stream's
    first change in a block (found by a short backward search), are kept as well.
    """
    key, funding_time = streams.key, streams.funding_time
    n, block = key.size, _REDUCTION_BLOCK_ROWS
    running_max = np.full(int(streams.stream_keys[-1]) + 1, _NO_WINDOW, dtype=np.int64)
    if streams.is_grouped():
        kept = [streams.bounds[1:] - 1]
    else:
        kept = [_last_positions_before(key, streams.stream_keys, n, running_max.size)]
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        differs = funding_time[lo:hi] != running_max.take(key[lo:hi])
        first = int(differs.argmax())
        if not differs[first]:
            continue
        start = lo + first
        region_key = key[start:hi]
        concerned = np.zeros(running_max.size, dtype=bool)
        concerned[region_key[differs[first:]]] = True
        rows = np.flatnonzero(concerned.take(region_key))
        rows = rows[np.argsort(region_key[rows], kind="stable")]
        row_key = region_key[rows]
        row_ft = funding_time[start:hi][rows]
        seg_start = np.flatnonzero(np.concatenate(([True], row_key[1:] != row_key[:-1])))
        seg_key = row_key[seg_start]
        before = np.empty(rows.size, dtype=np.int64)
        before[1:] = row_ft[:-1]
        before[seg_start] = running_max[seg_key]
        changed = row_ft != before
        went_back = np.logical_or.reduceat(row_ft < before, seg_start)
        keep = changed | np.repeat(went_back, np.diff(np.append(seg_start, rows.size)))
        keep[:-1] |= changed[1:]
        keep[seg_start - 1] = True  # each segment's last row (its successor is in a later block)
        kept.append(start + rows[keep])
        replaced_before = changed[seg_start] & (before[seg_start] != _NO_WINDOW)
        kept.append(_last_positions_before(key, seg_key[replaced_before], start, running_max.size))
        running_max[seg_key] = np.maximum(before[seg_start], np.maximum.reduceat(row_ft, seg_start))
    kept = np.unique(np.concatenate(kept))
    unseen = np.diff(streams.bounds) - np.bincount(streams.stream_of(key[kept]), minlength=streams.bounds.size - 1)
    return kept, unseen


def _last_positions_before(key: np.ndarray, wanted: np.ndarray, end: int, n_keys: int) -> np.ndarray:
    """The last arrival index before `end` of each wanted key (each occurs there), searched backwards
    in windows that double, so the cost follows the distance to the print found. Only the last row
    of each run of equal keys can be a stream's last print, which keeps grouped stretches cheap."""
    found = []
    remaining = np.zeros(n_keys, dtype=bool)
    remaining[wanted] = True
    n_remaining, width = int(np.count_nonzero(remaining)), _SEARCH_FIRST_ROWS
    while n_remaining and end > 0:
        lo = max(end - width, 0)
        window = key[lo:end]
        run_last = np.flatnonzero(np.append(window[1:] != window[:-1], True))
        hits = run_last[remaining.take(window[run_last])][::-1]
        hit_keys, newest = np.unique(window[hits], return_index=True)
        found.append(lo + hits[newest])
        remaining[hit_keys] = False
        n_remaining -= hit_keys.size
        end, width = lo, 2 * width
    return np.concatenate([np.zeros(0, dtype=np.int64), *found])


def _in_stream_order(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """`values` (indexed by arrival) at stream-order positions; `order` None means arrival order already is stream order."""
    return values if order is None else values[order]


def _arrival_rows(order: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
    """Arrival indices of stream-order positions."""
    return positions if order is None else order[positions]


def _replay(streams: _Streams, policy: SnapshotPolicy) -> tuple[dict, dict]:
    """The vectorised replay proper: output columns and stats per stream."""
    order, bounds = streams.stream_order(), streams.bounds
    n = streams.key.size
    n_streams = bounds.size - 1
    starts, ends = bounds[:-1], bounds[1:]
    funding_time = _in_stream_order(streams.funding_time, order)

    # `previous` is bucket 0's funding time before each print: the running maximum of the stream.
    # Without late prints that is just the print before, so the scan runs only on streams that go back.
    previous = np.empty(n, dtype=np.int64)
    previous[1:] = funding_time[:-1]
    previous[starts] = _NO_WINDOW
    late = funding_time < previous
    if late.any():
        for s in np.unique(np.searchsorted(ends, np.flatnonzero(late), side="right")).tolist():
            lo, hi = starts[s], ends[s]
            np.maximum.accumulate(funding_time[lo : hi - 1], out=previous[lo + 1 : hi])
        late = funding_time < previous
    late_pos = np.flatnonzero(late)
    roll_pos = np.flatnonzero(funding_time > previous)
    roll_stream = np.searchsorted(ends, roll_pos, side="right")
    first_roll = np.searchsorted(roll_pos, starts)

    # Window table: per roll, its kept interpolated windows (oldest first), then the window itself
    # holding the last print applied before the next roll (its settled/final value).
    next_roll_same_stream = np.append(roll_stream[1:] == roll_stream[:-1], False)
    boundary = np.where(next_roll_same_stream, np.append(roll_pos[1:], n), ends[roll_stream])
    final_row = _arrival_rows(order, _last_applied_at_or_before(late_pos, boundary - 1))
    roll_row = _arrival_rows(order, roll_pos)
    roll_rate, roll_interval = streams.rate[roll_row], streams.interval_h[roll_row]
    final_rate, final_interval = streams.rate[final_row], streams.interval_h[final_row]
    opens_stream = roll_pos == starts[roll_stream]
    n_skipped = np.where(opens_stream, 0, skipped_windows(funding_time[roll_pos] - previous[roll_pos], roll_interval))
    kept = np.minimum(n_skipped, N_BUCKETS - 1)
    entry_end = np.cumsum(kept + 1)
    real_entry = entry_end - 1
    entry_start = entry_end - kept - 1
    entry_rate = np.empty(entry_end[-1])
    entry_interval = np.empty(entry_end[-1])
    entry_interpolated = np.zeros(entry_end[-1], dtype=bool)
    entry_rate[real_entry] = final_rate
    entry_interval[real_entry] = final_interval
    gap_roll = np.repeat(np.arange(roll_pos.size), kept)
    if gap_roll.size:
        offset = np.arange(gap_roll.size) - np.repeat(np.cumsum(kept) - kept, kept)
        position = n_skipped[gap_roll] - kept[gap_roll] + 1 + offset
        entry = entry_start[gap_roll] + offset
        before = gap_roll - 1
        entry_rate[entry] = interpolated_rates(
            annualise(final_rate[before], final_interval[before]),
            annualise(roll_rate[gap_roll], roll_interval[gap_roll]),
            n_skipped[gap_roll],
            position,
            roll_interval[gap_roll],
        )
        entry_interval[entry] = roll_interval[gap_roll]
        entry_interpolated[entry] = True
    stream_first_entry = entry_start[first_roll]

    # Which prints emit, and the roll (window) each belongs to.
    if policy.mode == "roll":
        emit_pos = roll_pos
        emit_roll = np.arange(roll_pos.size)
    else:
        if policy.mode == "every_update":
            emit_pos = np.flatnonzero(~late)
        else:
            ts_sorted = _in_stream_order(streams.ts, order)
            due = [roll_pos]
            for p, end in zip(roll_pos.tolist(), boundary.tolist()):
                due.append(
                    np.asarray(
                        _due_positions(ts_sorted, late, p + 1, end, int(ts_sorted[p]), policy.every_ns), dtype=np.int64
                    )
                )
            emit_pos = np.sort(np.concatenate(due))
        emit_roll = np.searchsorted(roll_pos, emit_pos, side="right") - 1

    emit_row = _arrival_rows(order, emit_pos)
    newest = real_entry[emit_roll]
    oldest = stream_first_entry[roll_stream[emit_roll]]
    entry = newest[:, None] - _BUCKET_INDEX[None, :]
    filled = entry >= oldest[:, None]
    entry = np.where(filled, entry, 0)
    rates = np.where(filled, entry_rate[entry], np.nan)
    intervals = np.where(filled, entry_interval[entry], np.nan)
    interpolated = filled & entry_interpolated[entry]
    rates[:, 0] = streams.rate[emit_row]
    intervals[:, 0] = streams.interval_h[emit_row]
    interpolated[:, 0] = False
    ann = annualise(rates, intervals)
    emit_stream = roll_stream[emit_roll]

    columns = {
        "venue": streams.venues[emit_stream],
        "symbol": streams.symbols[emit_stream],
        "ts_snap": streams.ts[emit_row],
        "funding_time": funding_time[emit_pos],
        "interval_h": intervals[:, 0],
        **{c: rates[:, k] for k, c in enumerate(RATE_COLUMNS)},
        **{c: ann[:, k] for k, c in enumerate(ANN_COLUMNS)},
        "level": ann[:, 0],
        "slope": ann[:, 7] - ann[:, 0],
        "curvature": ann[:, 2] + ann[:, 5] - 2.0 * ann[:, 3],
        "n_filled": np.minimum(newest - oldest + 1, N_BUCKETS),
        "interpolated_mask": interpolated.astype(np.int64) @ _MASK_BITS,
    }

    prints_per = np.diff(bounds)
    rolls_per = np.bincount(roll_stream, minlength=n_streams)
    late_per = np.bincount(np.searchsorted(ends, late_pos, side="right"), minlength=n_streams)
    interpolated_per = np.zeros(n_streams, dtype=np.int64)
    np.add.at(interpolated_per, roll_stream, n_skipped)
    stats = {
        (streams.venues[s], streams.symbols[s]): BuilderStats(
            prints=int(prints_per[s]),
            replaced=int(prints_per[s] - rolls_per[s] - late_per[s]),
            rolls=int(rolls_per[s]),
            late=int(late_per[s]),
            interpolated=int(interpolated_per[s]),
        )
        for s in range(n_streams)
    }
    return columns, stats


def missing_bucket_pct(curves: pd.DataFrame) -> float:
    """Share (%) of funding windows on the curves' timeline that had no print and were interpolated.

    Each real window is counted once (its first snapshot). The windows skipped before it come from
    the funding-time jump to the previous window of the stream; for a stream's first window in the
    frame (its predecessor is outside the frame) from the run of interpolated buckets 1, 2, ….
    """
    require_columns(
        curves, ["venue", "symbol", "funding_time", "interval_h", "interpolated_mask"], "missing_bucket_pct"
    )
    if curves.empty:
        return 0.0
    windows = curves.drop_duplicates(["venue", "symbol", "funding_time"], keep="first").sort_values(
        ["venue", "symbol", "funding_time"], kind="stable"
    )
    funding_time = _to_ns(windows["funding_time"])
    mask = windows["interpolated_mask"].to_numpy(dtype=np.int64)
    run_from_bucket_1 = np.zeros(mask.size, dtype=np.int64)
    still_running = np.ones(mask.size, dtype=bool)
    for k in range(1, N_BUCKETS):
        still_running &= ((mask >> k) & 1) == 1
        run_from_bucket_1 += still_running
    same_stream = np.zeros(mask.size, dtype=bool)
    same_stream[1:] = (windows["venue"].to_numpy()[1:] == windows["venue"].to_numpy()[:-1]) & (
        windows["symbol"].to_numpy()[1:] == windows["symbol"].to_numpy()[:-1]
    )
    delta = np.zeros(mask.size, dtype=np.int64)
    delta[1:] = np.diff(funding_time)
    skipped = np.where(
        same_stream, skipped_windows(delta, windows["interval_h"].to_numpy(dtype=np.float64)), run_from_bucket_1
    )
    total_skipped = int(skipped.sum())
    return 100.0 * total_skipped / (total_skipped + len(windows))
