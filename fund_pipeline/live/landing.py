"""Landing zone: immutable Parquet segments the live collector appends and the sensor consumes.

Layout under the landing folder, one sub-folder per kind of row:

    prints/000000000042.parquet       FundingPrint rows (PRINT_COLUMNS), in the order the
                                      collector fed them to its curve builders
    snapshots/000000000042.parquet    curve snapshot rows (the curve builder's columns)
    quarantine/000000000042.parquet   messages that could not be parsed (venue, received_at, reason, raw)

One flush writes at most one segment per kind, all with the same sequence number; numbers grow
by one per flush and continue across collector restarts, so names sort in write order and a
reader's cursor ("consumed up to N") never skips nor repeats a segment. A segment is written to
a hidden temp file, fsynced, renamed into place and the folder fsynced: a reader sees a whole
segment or none, and `kill -9` leaves at most a stray temp file (removed at the next start).
One writer per landing folder, enforced by an exclusive lock on `.writer.lock`.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fund_pipeline.domain.prints import PRINT_COLUMNS, empty_prints, normalise_prints, to_utc

LANDING_KINDS = ("prints", "snapshots", "quarantine")
SEGMENT_SUFFIX = ".parquet"
TEMP_PREFIX = ".tmp-"
SEQ_DIGITS = 12

_TS = pa.timestamp("ns", tz="UTC")
PRINTS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("symbol", pa.string()),
        ("base", pa.string()),
        ("kind", pa.string()),
        ("funding_time", _TS),
        ("ts", _TS),
        ("received_at", _TS),
        ("rate", pa.float64()),
        ("interval_h", pa.float64()),
        ("mark_price", pa.float64()),
        ("index_price", pa.float64()),
        ("source", pa.string()),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [("venue", pa.string()), ("received_at", _TS), ("reason", pa.string()), ("raw", pa.string())]
)


class LandingLockedError(RuntimeError):
    """Another writer holds the landing folder."""


def segment_name(seq: int) -> str:
    return f"{seq:0{SEQ_DIGITS}d}{SEGMENT_SUFFIX}"


def list_segments(landing_dir: Path, kind: str, after_seq: int = -1) -> list[tuple[int, Path]]:
    """Complete segments of `kind` with sequence number > `after_seq`, in write order."""
    if kind not in LANDING_KINDS:
        raise ValueError(f"unknown landing kind {kind!r}; expected one of {LANDING_KINDS}")
    folder = Path(landing_dir) / kind
    if not folder.is_dir():
        return []
    found = []
    for entry in os.scandir(folder):
        name = entry.name
        if (
            name.endswith(SEGMENT_SUFFIX)
            and name[:SEQ_DIGITS].isdigit()
            and len(name) == SEQ_DIGITS + len(SEGMENT_SUFFIX)
        ):
            seq = int(name[:SEQ_DIGITS])
            if seq > after_seq:
                found.append((seq, Path(entry.path)))
    return sorted(found)


def last_seq(landing_dir: Path) -> int:
    """Highest sequence number landed in any kind, -1 if none."""
    seqs = [segs[-1][0] for kind in LANDING_KINDS if (segs := list_segments(landing_dir, kind))]
    return max(seqs, default=-1)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment_atomically(path: Path, table: pa.Table) -> None:
    """Temp file in the same folder, fsync, rename, fsync the folder."""
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    with open(tmp, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class SegmentWriter:
    """The one writer of a landing folder: numbered, atomic, immutable segments."""

    def __init__(self, landing_dir: Path) -> None:
        self.root = Path(landing_dir)
        for kind in LANDING_KINDS:
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".writer.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as held:
            self._lock.close()
            raise LandingLockedError(f"landing folder {self.root} is held by another collector") from held
        for kind in LANDING_KINDS:
            for stray in (self.root / kind).glob(f"{TEMP_PREFIX}*"):
                stray.unlink()
        self.next_seq = last_seq(self.root) + 1

    def write(self, tables: dict[str, pa.Table]) -> int | None:
        """Write the non-empty tables as segments of one new sequence number (returned)."""
        tables = {kind: t for kind, t in tables.items() if t is not None and t.num_rows}
        if not tables:
            return None
        seq = self.next_seq
        for kind in LANDING_KINDS:
            if kind in tables:
                write_segment_atomically(self.root / kind / segment_name(seq), tables[kind])
        self.next_seq = seq + 1
        return seq

    def close(self) -> None:
        if not self._lock.closed:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


def prints_table(rows: list[tuple]) -> pa.Table:
    """FundingPrint tuples (PRINT_COLUMNS order, times as int ns) to an Arrow table, without pandas."""
    columns = list(zip(*rows)) if rows else [[] for _ in PRINT_COLUMNS]
    arrays = []
    for field, values in zip(PRINTS_SCHEMA, columns):
        if field.type == _TS:
            arrays.append(pa.array(values, type=pa.int64()).cast(_TS))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=PRINTS_SCHEMA)


def quarantine_table(rows: list[tuple]) -> pa.Table:
    """(venue, received_at ns, reason, raw text) tuples to an Arrow table."""
    venue, received, reason, raw = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    return pa.Table.from_arrays(
        [
            pa.array(venue, pa.string()),
            pa.array(received, pa.int64()).cast(_TS),
            pa.array(reason, pa.string()),
            pa.array(raw, pa.string()),
        ],
        schema=QUARANTINE_SCHEMA,
    )


def frame_table(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def read_segments(paths: list[Path], columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    """Concatenate segments in the given order (write order when from `list_segments`)."""
    if not paths:
        return pd.DataFrame(columns=columns or [])
    tables = [pq.read_table(p, columns=columns, filters=filters) for p in paths]
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].astype("datetime64[ns, UTC]")
    return frame


def read_landed(
    landing_dir: Path, kind: str, after_seq: int = -1, columns: list[str] | None = None, filters=None
) -> pd.DataFrame:
    return read_segments([p for _, p in list_segments(landing_dir, kind, after_seq)], columns, filters)


def read_landed_prints(landing_dir: Path, venue: str, start, end) -> pd.DataFrame:
    """Landed predicted prints of `venue` with funding_time in [start, end), PRINT_COLUMNS.

    An empty frame with the right columns when nothing is landed or the folder does not exist.
    """
    start, end = to_utc([start, end])
    filters = [
        ("venue", "=", venue),
        ("kind", "=", "predicted"),
        ("funding_time", ">=", start),
        ("funding_time", "<", end),
    ]
    frame = read_landed(Path(landing_dir), "prints", columns=PRINT_COLUMNS, filters=filters)
    if frame.empty:
        return empty_prints()
    return normalise_prints(frame)
