"""The vectorised replay: every stream's snapshots at once with numpy index arithmetic.

Gives the streaming builder's output exactly (property-tested); `build_curves_streaming` runs the
builders themselves over a frame, for the comparison and for small inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fund_pipeline.domain.curve.builder import FundingCurveBuilder
from fund_pipeline.domain.curve.frames import curve_frame, snapshots_frame
from fund_pipeline.domain.curve.rules import (
    BUCKET_INDEX,
    DEFAULT_POLICY,
    MASK_BITS,
    NO_WINDOW,
    BuilderStats,
    SnapshotPolicy,
    check_times,
    check_values,
    due_positions,
    interpolated_rates,
    last_applied_at_or_before,
    skipped_windows,
)
from fund_pipeline.domain.keys import label_codes
from fund_pipeline.domain.prints import annualise, require_columns
from fund_pipeline.domain.records import ANN_COLUMNS, N_BUCKETS, RATE_COLUMNS
from fund_pipeline.domain.time import time_ns

PRINT_INPUT_COLUMNS = ["venue", "symbol", "funding_time", "ts", "rate", "interval_h"]


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
        """Whether the prints already lie stream after stream (frames read ORDER BY venue, symbol, ts)."""
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
        funding_time = time_ns(prints["funding_time"], copy=False)
        ts = time_ns(prints["ts"], copy=False)
        check_times(funding_time, "funding_time", what)
        check_times(ts, "ts", what)
        rate = prints["rate"].to_numpy(dtype=np.float64)
        interval_h = prints["interval_h"].to_numpy(dtype=np.float64)
        check_values(rate, interval_h, what)
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
    """`label_codes`, refusing missing keys: a print without a venue or symbol has no stream."""
    codes, labels = label_codes(column)
    if codes.size and codes.min() < 0:
        raise ValueError(f"{what}: {name} is missing at position {int(np.argmax(codes < 0))}")
    return codes, labels


def _key_counts(key: np.ndarray, n_keys: int) -> np.ndarray:
    """Prints per key. `np.bincount` widens every key to 8 bytes first; over blocks of 64 Ki keys the
    widened copy stays in cache, which halves the time of one bincount over 10 M 1-byte keys."""
    counts = np.zeros(max(n_keys, 1), dtype=np.int64)
    for lo in range(0, key.size, _COUNT_BLOCK_ROWS):
        counts += np.bincount(key[lo : lo + _COUNT_BLOCK_ROWS], minlength=counts.size)
    return counts[:n_keys]


_COUNT_BLOCK_ROWS = 1 << 16


def build_curves_streaming(prints: pd.DataFrame, policy: SnapshotPolicy = DEFAULT_POLICY) -> tuple[pd.DataFrame, dict]:
    """Feed each stream's prints (row order = arrival order) to its own builder; snapshots and stats per stream."""
    streams = _Streams.from_frame(prints, "build_curves_streaming")
    rows, stats, order = [], {}, streams.stream_order()
    for s, (lo, hi) in enumerate(zip(streams.bounds[:-1].tolist(), streams.bounds[1:].tolist(), strict=True)):
        builder = FundingCurveBuilder(streams.venues[s], streams.symbols[s], policy)
        idx = slice(lo, hi) if order is None else order[lo:hi]
        rows += builder.update_batch(
            streams.funding_time[idx], streams.rate[idx], streams.interval_h[idx], streams.ts[idx]
        )
        stats[(builder.venue, builder.symbol)] = builder.stats
    return snapshots_frame(rows), stats


def replay_curves(prints: pd.DataFrame, policy: SnapshotPolicy = DEFAULT_POLICY) -> tuple[pd.DataFrame, dict]:
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
    for stat, extra in zip(stats.values(), unseen.tolist(), strict=True):
        stat.prints += extra
        stat.replaced += extra
    return curve_frame(columns), stats


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
    running_max = np.full(int(streams.stream_keys[-1]) + 1, NO_WINDOW, dtype=np.int64)
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
        replaced_before = changed[seg_start] & (before[seg_start] != NO_WINDOW)
        kept.append(_last_positions_before(key, seg_key[replaced_before], start, running_max.size))
        running_max[seg_key] = np.maximum(before[seg_start], np.maximum.reduceat(row_ft, seg_start))
    rows_kept = np.unique(np.concatenate(kept))
    unseen = np.diff(streams.bounds) - np.bincount(streams.stream_of(key[rows_kept]), minlength=streams.bounds.size - 1)
    return rows_kept, unseen


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
    """`values` (indexed by arrival) at stream-order positions; `order` None: arrival order is stream order."""
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
    previous[starts] = NO_WINDOW
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
    final_row = _arrival_rows(order, last_applied_at_or_before(late_pos, boundary - 1))
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
            for p, end in zip(roll_pos.tolist(), boundary.tolist(), strict=True):
                due.append(
                    np.asarray(
                        due_positions(ts_sorted, late, p + 1, end, int(ts_sorted[p]), policy.every_ns), dtype=np.int64
                    )
                )
            emit_pos = np.sort(np.concatenate(due))
        emit_roll = np.searchsorted(roll_pos, emit_pos, side="right") - 1

    emit_row = _arrival_rows(order, emit_pos)
    newest = real_entry[emit_roll]
    oldest = stream_first_entry[roll_stream[emit_roll]]
    entry = newest[:, None] - BUCKET_INDEX[None, :]
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
        "interpolated_mask": interpolated.astype(np.int64) @ MASK_BITS,
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
