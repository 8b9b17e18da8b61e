"""Named, typed records that travel between the layers: a funding print and a curve snapshot.

Hot paths (stream parsing, the collector, the streaming builder) create millions of these, so
they are `NamedTuple`s: as cheap as a tuple, read by field name, never by position. Frame
column lists are derived from the records, so a record and its table cannot drift apart.
Times are int nanoseconds since the epoch, UTC; rates are decimals per funding interval.
"""

from __future__ import annotations

from typing import NamedTuple

N_BUCKETS = 8


class FundingPrint(NamedTuple):
    """One funding rate as a venue (or a file, or the simulator) stated it.

    `funding_time` is the settlement instant of the window the rate applies to; `ts` the
    venue's event time; `received_at` the local receive time (0 when not received live).
    """

    venue: str
    symbol: str
    base: str
    kind: str  # settled | predicted
    funding_time: int
    ts: int
    received_at: int
    rate: float
    interval_h: float
    mark_price: float
    index_price: float
    source: str  # sim | file | rest | ws | reconstructed


class CurveSnapshot(NamedTuple):
    """A venue × symbol curve at `ts_snap`: bucket 0 the newest window, bucket k k rolls back."""

    venue: str
    symbol: str
    ts_snap: int
    funding_time: int
    interval_h: float
    b0: float
    b1: float
    b2: float
    b3: float
    b4: float
    b5: float
    b6: float
    b7: float
    b0_ann: float
    b1_ann: float
    b2_ann: float
    b3_ann: float
    b4_ann: float
    b5_ann: float
    b6_ann: float
    b7_ann: float
    level: float
    slope: float
    curvature: float
    n_filled: int
    interpolated_mask: int


PRINT_COLUMNS = list(FundingPrint._fields)
PRINT_KEY = ["venue", "symbol", "kind", "funding_time", "ts"]
CURVE_COLUMNS = list(CurveSnapshot._fields)
RATE_COLUMNS = [f"b{k}" for k in range(N_BUCKETS)]
ANN_COLUMNS = [f"b{k}_ann" for k in range(N_BUCKETS)]
