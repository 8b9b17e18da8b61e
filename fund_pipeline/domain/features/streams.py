"""The curve streams of a feature build (venue x symbol as integer codes) and their settled prints."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fund_pipeline.domain.factors import ends_of_runs
from fund_pipeline.domain.keys import label_codes
from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.domain.time import NAT_NS, time_ns, utc_from_ns


@dataclass(frozen=True)
class CurveStreams:
    """The curve streams (venue x symbol), coded 0..n-1 in (venue, symbol) order."""

    venue: np.ndarray
    symbol: np.ndarray
    venue_code: np.ndarray
    venue_labels: pd.Index
    symbol_labels: pd.Index
    pair: np.ndarray

    def __len__(self) -> int:
        return len(self.pair)

    @classmethod
    def coded(cls, venue: pd.Series, symbol: pd.Series) -> tuple[CurveStreams, np.ndarray]:
        """The streams of these key columns, and each row's stream code."""
        venue_code, venue_labels = label_codes(venue)
        symbol_code, symbol_labels = label_codes(symbol)
        if (venue_code < 0).any() or (symbol_code < 0).any():
            raise SchemaError("curve snapshots: venue and symbol must not be null")
        n_symbols = len(symbol_labels)
        pair, stream = np.unique(venue_code.astype("int64") * n_symbols + symbol_code, return_inverse=True)
        streams = cls(
            venue=np.asarray(venue_labels, dtype=object)[pair // n_symbols],
            symbol=np.asarray(symbol_labels, dtype=object)[pair % n_symbols],
            venue_code=pair // n_symbols,
            venue_labels=pd.Index(venue_labels),
            symbol_labels=pd.Index(symbol_labels),
            pair=pair,
        )
        return streams, stream

    def code(self, venue: pd.Series, symbol: pd.Series) -> np.ndarray:
        """Stream code of each row of another frame; -1 where the stream has no curve."""
        if not len(self.pair):
            return np.full(len(venue), -1)
        venue_code = _codes_in(venue, self.venue_labels)
        symbol_code = _codes_in(symbol, self.symbol_labels)
        # A table over all (venue label, symbol label) pairs, plus one slot for keys not among the labels.
        n_pairs = len(self.venue_labels) * len(self.symbol_labels)
        stream_of_pair = np.full(n_pairs + 1, -1)
        stream_of_pair[self.pair] = np.arange(len(self.pair))
        known = (venue_code >= 0) & (symbol_code >= 0)
        return stream_of_pair[np.where(known, venue_code * len(self.symbol_labels) + symbol_code, n_pairs)]


def _codes_in(column: pd.Series, labels: pd.Index) -> np.ndarray:
    """Position of each row's key in `labels` (-1 where missing or not there), looking up each distinct key once."""
    codes, column_labels = label_codes(column)
    position = np.append(labels.get_indexer(column_labels), -1)
    return position[codes]


def _key_labels(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The text keys of these rows (None where missing) as an object array, without converting the whole column."""
    codes, labels = label_codes(column)
    return np.append(labels, np.array([None], dtype=object))[codes[rows]]


@dataclass(frozen=True)
class StreamBases:
    """Each stream's base asset: its label, and a code in label order."""

    label: np.ndarray
    code: np.ndarray


@dataclass(frozen=True)
class SettledPrints:
    """Settled prints of the curve streams, one per stream and funding_time, sorted by (stream, funding_time)."""

    stream: np.ndarray
    funding_ns: np.ndarray
    rate: np.ndarray
    interval_h: np.ndarray
    base: np.ndarray

    @classmethod
    def from_prints(cls, prints: pd.DataFrame, streams: CurveStreams) -> SettledPrints:
        """Keeps the latest event of a window a venue re-sent (latest `ts` when present, else the last row)."""
        stream = streams.code(prints["venue"], prints["symbol"])
        settled = np.flatnonzero((prints["kind"] == "settled").to_numpy() & (stream >= 0))
        stream, funding_ns = stream[settled], time_ns(prints["funding_time"])[settled]
        sent_ns = None
        if "ts" in prints.columns:
            sent_ns = time_ns(prints["ts"])[settled]
            # NaT sorts last, as in sort_values.
            sent_ns[sent_ns == NAT_NS] = np.iinfo("int64").max
        order = window_order(stream, funding_ns, sent_ns)
        stream, funding_ns = stream[order], funding_ns[order]
        last = ends_of_runs(stream, funding_ns)
        kept = settled[order[last]]
        return cls(
            stream=stream[last],
            funding_ns=funding_ns[last],
            rate=prints["rate"].to_numpy(dtype="float64")[kept],
            interval_h=prints["interval_h"].to_numpy(dtype="float64")[kept],
            base=_key_labels(prints["base"], kept),
        )

    def next_after(self, stream: np.ndarray, funding_ns: np.ndarray) -> dict:
        """TARGET_COLUMNS: the stream's first settled print strictly after each funding_time, if passed."""
        target_ns = np.full(len(stream), NAT_NS)
        target_rate, target_interval_h = np.full(len(stream), np.nan), np.full(len(stream), np.nan)
        if len(self.stream) and len(stream):
            # Ranks among the settled times (a row: of the last settled time at or before it) make (stream, time)
            # one sortable integer key; the distinct times are few, so they are hashed out, not sorted out.
            times = np.sort(pd.unique(self.funding_ns))
            settled_key = self.stream * len(times) + np.searchsorted(times, self.funding_ns)
            row_key = stream * len(times) + np.searchsorted(times, funding_ns, side="right") - 1
            position = np.searchsorted(settled_key, row_key, side="right")
            found = np.flatnonzero(position < len(settled_key))
            found = found[self.stream[position[found]] == stream[found]]
            target = position[found]
            target_ns[found] = self.funding_ns[target]
            target_rate[found], target_interval_h[found] = self.rate[target], self.interval_h[target]
        return {
            "target_time": utc_from_ns(target_ns),
            "target_rate": target_rate,
            "target_interval_h": target_interval_h,
        }


def latest_snapshots(curves: pd.DataFrame) -> tuple[CurveStreams, np.ndarray, np.ndarray, np.ndarray]:
    """One snapshot per window (the last taken): the streams, and each kept row's stream, position, funding ns.

    Kept rows are in (stream, funding_time) order, the order every per-stream feature needs.
    """
    streams, stream = CurveStreams.coded(curves["venue"], curves["symbol"])
    funding_ns = time_ns(curves["funding_time"])
    order = window_order(stream, funding_ns, time_ns(curves["ts_snap"]))
    stream, funding_ns = stream[order], funding_ns[order]
    last = ends_of_runs(stream, funding_ns)
    return streams, stream[last], order[last], funding_ns[last]


def window_order(stream: np.ndarray, funding_ns: np.ndarray, sent_ns: np.ndarray | None) -> np.ndarray:
    """Row order by (stream, funding_time), the rows of one window by `sent_ns` (ties and no `sent_ns`: row order).

    Ordering by send time is a third sort pass, so it is done only when some window has more than one row.
    """
    order = np.lexsort((funding_ns, stream))
    if sent_ns is not None and not ends_of_runs(stream[order], funding_ns[order]).all():
        order = np.lexsort((sent_ns, funding_ns, stream))
    return order


def stream_bases(streams: CurveStreams, settled: SettledPrints, bars: pd.DataFrame | None) -> StreamBases:
    """Base asset of each stream, from its first settled print naming one (or its bars); unknown is an error."""
    label = np.full(len(streams), None, dtype=object)
    _fill_first(label, settled.stream, settled.base)
    if bars is not None and not bars.empty and pd.isna(label).any():
        _fill_first(label, streams.code(bars["venue"], bars["symbol"]), _key_labels(bars["base"], np.arange(len(bars))))
    if pd.isna(label).any():
        missing = np.flatnonzero(pd.isna(label))[:5]
        sample = [{"venue": streams.venue[i], "symbol": streams.symbol[i]} for i in missing]
        raise SchemaError(f"curve snapshots: no base asset known (no prints or bars) for streams {sample}")
    code, _ = pd.factorize(label, sort=True)
    return StreamBases(label, code)


def _fill_first(label: np.ndarray, stream: np.ndarray, base: np.ndarray) -> None:
    """Set still-unknown labels from each stream's first row that names a base."""
    named = (stream >= 0) & ~pd.isna(base)
    first_stream, first_row = np.unique(stream[named], return_index=True)
    unknown = pd.isna(label[first_stream])
    label[first_stream[unknown]] = base[named][first_row[unknown]]
