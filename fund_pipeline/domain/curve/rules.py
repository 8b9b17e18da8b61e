"""Curve rules shared by the streaming builder and the vectorised replay: policy, stats, numerics.

The paths are bit-identical because all transcendental maths goes through the same numpy
functions (`annualise`, `deannualise`) and these helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fund_pipeline.domain.prints import deannualise
from fund_pipeline.domain.records import N_BUCKETS
from fund_pipeline.domain.time import NS_PER_HOUR

SNAPSHOT_MODES = ("roll", "every_n_seconds", "every_update")

# Running-maximum sentinel for "no window yet": below every valid nanosecond timestamp (NaT is rejected).
NO_WINDOW = np.iinfo(np.int64).min
BUCKET_INDEX = np.arange(N_BUCKETS)
MASK_BITS = np.left_shift(1, BUCKET_INDEX).astype(np.int64)


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


DEFAULT_POLICY = SnapshotPolicy()


@dataclass
class BuilderStats:
    """What happened to a stream's prints: nothing is dropped silently."""

    prints: int = 0
    replaced: int = 0
    rolls: int = 0
    late: int = 0
    interpolated: int = 0


def skipped_windows(delta_ns, interval_h) -> np.ndarray:
    """Windows missing between two funding times Δ apart, counted in the new interval."""
    steps = np.rint(np.asarray(delta_ns, dtype=np.float64) / (np.asarray(interval_h, dtype=np.float64) * NS_PER_HOUR))
    return np.maximum(steps - 1.0, 0.0).astype(np.int64)


def interpolated_rates(ann_old, ann_new, n_skipped, position, interval_new) -> np.ndarray:
    """Rate of skipped window `position` (1 = right after the old window) of `n_skipped`, linear in annualised yield."""
    fraction = np.asarray(position, dtype=np.float64) / (np.asarray(n_skipped, dtype=np.float64) + 1.0)
    ann_old = np.asarray(ann_old, dtype=np.float64)
    return deannualise(ann_old + (np.asarray(ann_new, dtype=np.float64) - ann_old) * fraction, interval_new)


def check_values(rate: np.ndarray, interval_h: np.ndarray, what: str) -> None:
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


def check_times(ns: np.ndarray, column: str, what: str) -> None:
    if ns.size and ns.min() == NO_WINDOW:
        raise ValueError(f"{what}: {column} has missing (NaT) values at position {int(np.argmax(ns == NO_WINDOW))}")


def last_applied_at_or_before(late_pos: np.ndarray, q: np.ndarray) -> np.ndarray:
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


def due_positions(ts: np.ndarray, late: np.ndarray, lo: int, hi: int, last_ts: int | None, every_ns: int) -> list[int]:
    """Positions in [lo, hi) where "every_n_seconds" emits: an applied print ≥ every_ns after the last snapshot."""
    if hi <= lo:
        return []
    applied_ts = np.where(late[lo:hi], NO_WINDOW, ts[lo:hi])
    running_max = np.maximum.accumulate(applied_ts)
    due, i = [], 0
    if last_ts is None:
        applied = np.flatnonzero(applied_ts != NO_WINDOW)
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
