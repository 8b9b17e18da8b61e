"""The streaming curve builder: one per venue × symbol, fed print by print (live) or batch by batch."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fund_pipeline.domain.curve.rules import (
    DEFAULT_POLICY,
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
from fund_pipeline.domain.prints import annualise, require_columns
from fund_pipeline.domain.records import N_BUCKETS, CurveSnapshot
from fund_pipeline.domain.time import time_ns


class FundingCurveBuilder:
    """The live curve of one venue × symbol, fed print by print (or batch by batch)."""

    def __init__(self, venue: str, symbol: str, policy: SnapshotPolicy = DEFAULT_POLICY):
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

    def _emit(self, ts: int) -> CurveSnapshot:
        self._last_snap_ts = ts
        return self.snapshot(ts)

    def update(self, funding_time_ns: int, rate: float, interval_h: float, ts_ns: int) -> CurveSnapshot | None:
        """Apply one print; return a snapshot (times in ns) when the policy says so."""
        rate, interval_h = float(rate), float(interval_h)
        funding_time, ts = int(funding_time_ns), int(ts_ns)
        if not (rate > -1.0 and interval_h > 0 and math.isfinite(rate) and math.isfinite(interval_h)):
            check_values(np.array([rate]), np.array([interval_h]), f"{self.venue} {self.symbol}")
        if funding_time == NO_WINDOW or ts == NO_WINDOW:
            check_times(np.array([funding_time, ts]), "funding_time/ts", f"{self.venue} {self.symbol}")
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

    def update_batch(self, funding_time_ns, rate, interval_h, ts_ns) -> list[CurveSnapshot]:
        """`update` over arrays in arrival order: rolls are found with numpy, Python runs only per roll/snapshot."""
        funding_time = np.asarray(funding_time_ns, dtype=np.int64)
        rate = np.asarray(rate, dtype=np.float64)
        interval_h = np.asarray(interval_h, dtype=np.float64)
        ts = np.asarray(ts_ns, dtype=np.int64)
        n = funding_time.size
        if not (rate.size == interval_h.size == ts.size == n):
            raise ValueError(
                f"{self.venue} {self.symbol}: update_batch arrays differ in length "
                f"({n}, {rate.size}, {interval_h.size}, {ts.size})"
            )
        if n == 0:
            return []
        check_values(rate, interval_h, f"{self.venue} {self.symbol}")
        check_times(funding_time, "funding_time", f"{self.venue} {self.symbol}")
        check_times(ts, "ts", f"{self.venue} {self.symbol}")
        start = NO_WINDOW if self._funding_time is None else self._funding_time
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
            for p, is_roll in zip(np.flatnonzero(~late).tolist(), rolled[~late].tolist(), strict=True):
                if is_roll:
                    self._count_roll(self._roll(int(funding_time[p]), float(rate[p]), float(interval_h[p])))
                else:
                    self._replace(float(rate[p]), float(interval_h[p]))
                rows.append(self._emit(int(ts[p])))
            return rows

        timed = self.policy.mode == "every_n_seconds"
        before_roll = last_applied_at_or_before(late_pos, roll_pos - 1).tolist()
        segment_ends = [*roll_pos.tolist()[1:], n][: roll_pos.size]
        rows = []
        if timed and self._funding_time is not None:
            rows += self._replay_due(funding_time, rate, interval_h, ts, late, 0, roll_pos[0] if roll_pos.size else n)
        for p, q, end in zip(roll_pos.tolist(), before_roll, segment_ends, strict=True):
            if q >= 0:
                self._replace(float(rate[q]), float(interval_h[q]))
            self._count_roll(self._roll(int(funding_time[p]), float(rate[p]), float(interval_h[p])))
            rows.append(self._emit(int(ts[p])))
            if timed:
                rows += self._replay_due(funding_time, rate, interval_h, ts, late, p + 1, end)
        last = int(last_applied_at_or_before(late_pos, np.array([n - 1]))[0])
        if last >= 0:
            self._replace(float(rate[last]), float(interval_h[last]))
        return rows

    def _replay_due(self, funding_time, rate, interval_h, ts, late, lo: int, hi: int) -> list[CurveSnapshot]:
        rows = []
        for j in due_positions(ts, late, lo, hi, self._last_snap_ts, self._every_ns):
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
        funding_time = time_ns(ordered["funding_time"], copy=False)
        check_times(funding_time, "funding_time", f"seed {self.venue} {self.symbol}")
        rate = ordered["rate"].to_numpy(dtype=np.float64)
        interval_h = ordered["interval_h"].to_numpy(dtype=np.float64)
        check_values(rate, interval_h, f"seed {self.venue} {self.symbol}")
        self._clear_ring()
        for ft, r, ih in zip(funding_time.tolist(), rate.tolist(), interval_h.tolist(), strict=True):
            if self._funding_time is not None and ft == self._funding_time:
                self._replace(r, ih)
            else:
                self._roll(ft, r, ih)

    def snapshot(self, ts_ns: int) -> CurveSnapshot:
        """The current curve as a CurveSnapshot (ts_snap and funding_time in ns since the epoch)."""
        if self._funding_time is None:
            raise ValueError(f"{self.venue} {self.symbol}: no print yet, there is no curve to snapshot")
        ann = annualise(self._rates, self._intervals)
        level = ann[0]
        mask = sum(1 << k for k, flag in enumerate(self._interpolated) if flag)
        rates, anns = self._rates, ann.tolist()
        return CurveSnapshot(
            venue=self.venue,
            symbol=self.symbol,
            ts_snap=int(ts_ns),
            funding_time=self._funding_time,
            interval_h=self._intervals[0],
            b0=rates[0],
            b1=rates[1],
            b2=rates[2],
            b3=rates[3],
            b4=rates[4],
            b5=rates[5],
            b6=rates[6],
            b7=rates[7],
            b0_ann=anns[0],
            b1_ann=anns[1],
            b2_ann=anns[2],
            b3_ann=anns[3],
            b4_ann=anns[4],
            b5_ann=anns[5],
            b6_ann=anns[6],
            b7_ann=anns[7],
            level=float(level),
            slope=float(ann[7] - level),
            curvature=float(ann[2] + ann[5] - 2.0 * ann[3]),
            n_filled=self._n_filled,
            interpolated_mask=mask,
        )
