"""Landing zone: immutable Parquet segments the live collector appends and the sensor consumes.

Layout under the landing folder, one sub-folder per kind of row:

    prints/000000000042.parquet       FundingPrint rows (PRINT_COLUMNS), in the order the
                                      collector fed them to its curve builders
    snapshots/000000000042.parquet    curve snapshot rows (the curve builder's columns)
    quarantine/000000000042.parquet   messages that could not be parsed (venue, received_at, reason, raw)
    liquidations/000000000042.parquet Liquidation rows (LIQUIDATION_COLUMNS) from the venues' liquidation channels

One flush writes at most one segment per kind, all with the same sequence number; numbers grow
by one per flush and continue across collector restarts, so names sort in write order and a
reader's cursor ("consumed up to N") never skips nor repeats a segment. A segment is written to
a hidden temp file, fsynced, renamed into place and the folder fsynced: a reader sees a whole
segment or none, and `kill -9` leaves at most a stray temp file (removed at the next start).
One writer per landing folder, enforced by an exclusive lock on `.writer.lock`.

    rejected/prints/000000000042.parquet   a segment a reader could not use, moved aside whole
    rejected/prints/000000000042.json      its sidecar: original file, reason, when and by whom

Rejected segments keep their sequence numbers (the writer never reuses one), so moving a bad
segment aside neither loses its bytes nor lets a later segment take its place behind a cursor.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fund_pipeline.domain.liquidations import LIQUIDATION_COLUMNS, Liquidation, normalise_liquidations
from fund_pipeline.domain.prints import PRINT_COLUMNS, empty_prints, normalise_prints, to_utc
from fund_pipeline.domain.records import CURVE_COLUMNS, FundingPrint

LANDING_KINDS = ("prints", "snapshots", "quarantine", "liquidations")
SEGMENT_SUFFIX = ".parquet"
TEMP_PREFIX = ".tmp-"
SEQ_DIGITS = 12
REJECTED_DIR = "rejected"
SIDECAR_SUFFIX = ".json"

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
LIQUIDATIONS_SCHEMA = pa.schema(
    [
        ("venue", pa.string()),
        ("symbol", pa.string()),
        ("base", pa.string()),
        ("ts", _TS),
        ("received_at", _TS),
        ("side", pa.string()),
        ("price", pa.float64()),
        ("quantity", pa.float64()),
        ("notional_usd", pa.float64()),
        ("source", pa.string()),
    ]
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
    """Highest sequence number landed in any kind, rejected segments included; -1 if none."""
    root = Path(landing_dir)
    seqs = [segs[-1][0] for kind in LANDING_KINDS if (segs := list_segments(root, kind))]
    for kind in LANDING_KINDS:
        folder = root / REJECTED_DIR / kind
        if folder.is_dir():
            seqs += [
                int(p.name[:SEQ_DIGITS]) for p in folder.glob(f"*{SEGMENT_SUFFIX}") if p.name[:SEQ_DIGITS].isdigit()
            ]
    return max(seqs, default=-1)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, write) -> None:
    """Temp file in the same folder, `write(handle)`, fsync, rename, fsync the folder."""
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_segment_atomically(path: Path, table: pa.Table) -> None:
    """Temp file in the same folder, fsync, rename, fsync the folder."""
    _write_atomically(path, lambda handle: pq.write_table(table, handle, compression="zstd"))


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


def prints_table(rows: Sequence[FundingPrint]) -> pa.Table:
    """FundingPrint records (times as int ns) to an Arrow table, column by field, without pandas."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in PRINT_COLUMNS]
    arrays = []
    for field, values in zip(PRINTS_SCHEMA, columns, strict=True):
        if field.type == _TS:
            arrays.append(pa.array(values, type=pa.int64()).cast(_TS))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=PRINTS_SCHEMA)


def liquidations_table(rows: Sequence[Liquidation]) -> pa.Table:
    """Liquidation records (times as int ns) to an Arrow table, column by field."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in LIQUIDATION_COLUMNS]
    arrays = [
        pa.array(values, type=pa.int64()).cast(_TS) if field.type == _TS else pa.array(values, type=field.type)
        for field, values in zip(LIQUIDATIONS_SCHEMA, columns, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=LIQUIDATIONS_SCHEMA)


def quarantine_table(rows: list[tuple]) -> pa.Table:
    """(venue, received_at ns, reason, raw text) tuples to an Arrow table."""
    venue, received, reason, raw = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
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


def _snapshot_type(name: str) -> pa.DataType:
    if name in ("venue", "symbol"):
        return pa.string()
    if name in ("ts_snap", "funding_time"):
        return _TS
    return pa.int64() if name in ("n_filled", "interpolated_mask") else pa.float64()


# What the readers expect of a snapshot segment: the curve builder's columns, as snapshots_frame types them.
SNAPSHOTS_SCHEMA = pa.schema([(name, _snapshot_type(name)) for name in CURVE_COLUMNS])


class SegmentProblem(NamedTuple):
    """A landed segment the readers skipped: the file and why."""

    path: str
    reason: str


class LandingSegmentError(ValueError):
    """A landed segment cannot be read or has the wrong schema (raised when no problem list is given)."""


def _expected_schema(kind: str) -> pa.Schema | None:
    if kind == "prints":
        return PRINTS_SCHEMA
    if kind == "quarantine":
        return QUARANTINE_SCHEMA
    if kind == "snapshots":
        return SNAPSHOTS_SCHEMA
    if kind == "liquidations":
        return LIQUIDATIONS_SCHEMA
    return None


def _same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(found) and found.tz is not None
    if pa.types.is_string(expected) or pa.types.is_large_string(expected):
        return pa.types.is_string(found) or pa.types.is_large_string(found) or pa.types.is_null(found)
    return found == expected or (pa.types.is_null(found) and not pa.types.is_integer(expected))


def segment_problem(path: Path, columns: Sequence[str] | None = None) -> str | None:
    """Why a segment cannot be used (unreadable, missing a column, a column of the wrong type), or None."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        return f"unreadable: {error}"
    expected = _expected_schema(path.parent.name)
    if expected is None:
        return None
    for name in columns or expected.names:
        if name not in expected.names:
            continue
        if name not in schema.names:
            return f"no column {name!r}"
        found, want = schema.field(name).type, expected.field(name).type
        if not _same_type(found, want):
            return f"column {name!r} is {found}, expected {want}"
    return None


def landing_problems(landing_dir: Path) -> list[SegmentProblem]:
    """Every segment, of every kind, that cannot be read or lacks its kind's full schema (footers only).

    A reader of a few columns would pass a segment whose other columns are wrong; judged whole,
    it is found by whichever reader looks first.
    """
    return [
        SegmentProblem(str(path), reason)
        for kind in LANDING_KINDS
        for _, path in list_segments(landing_dir, kind)
        if (reason := segment_problem(path)) is not None
    ]


def read_segments(
    paths: Sequence[Path],
    columns: list[str] | None = None,
    filters=None,
    problems: list[SegmentProblem] | None = None,
) -> pd.DataFrame:
    """Concatenate segments in the given order (write order when from `list_segments`).

    A segment that cannot be read (0 bytes, truncated, not Parquet) or does not have its kind's
    schema is skipped and appended to `problems` with the reason, so one bad file never blocks the
    good ones; without a `problems` list it raises LandingSegmentError naming the file.
    """
    tables = []
    for path in paths:
        path = Path(path)
        reason = segment_problem(path, columns)
        if reason is None:
            try:
                tables.append(pq.read_table(path, columns=columns, filters=filters))
                continue
            except (pa.ArrowException, OSError) as error:
                reason = f"unreadable: {error}"
        if problems is None:
            raise LandingSegmentError(f"landing segment {path}: {reason}")
        problems.append(SegmentProblem(str(path), reason))
    if not tables:
        return pd.DataFrame(columns=columns or [])
    frame = pa.concat_tables(tables, promote_options="default").to_pandas()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].astype("datetime64[ns, UTC]")
    return frame


def read_landed(
    landing_dir: Path,
    kind: str,
    after_seq: int = -1,
    columns: list[str] | None = None,
    filters=None,
    problems: list[SegmentProblem] | None = None,
) -> pd.DataFrame:
    return read_segments([p for _, p in list_segments(landing_dir, kind, after_seq)], columns, filters, problems)


def read_landed_prints(
    landing_dir: Path, venue: str, start, end, problems: list[SegmentProblem] | None = None
) -> pd.DataFrame:
    """Landed predicted prints of `venue` with funding_time in [start, end), PRINT_COLUMNS.

    An empty frame with the right columns when nothing is landed or the folder does not exist.
    Bad segments are skipped into `problems` (see `read_segments`).
    """
    start, end = to_utc([start, end])
    filters = [
        ("venue", "=", venue),
        ("kind", "=", "predicted"),
        ("funding_time", ">=", start),
        ("funding_time", "<", end),
    ]
    frame = read_landed(Path(landing_dir), "prints", columns=PRINT_COLUMNS, filters=filters, problems=problems)
    if frame.empty:
        return empty_prints()
    return normalise_prints(frame)


def read_landed_liquidations(
    landing_dir: Path, start, end, problems: list[SegmentProblem] | None = None
) -> pd.DataFrame:
    """Landed liquidations with ts in [start, end), LIQUIDATION_COLUMNS (empty when nothing is landed)."""
    start, end = to_utc([start, end])
    filters = [("ts", ">=", start), ("ts", "<", end)]
    columns = LIQUIDATION_COLUMNS
    frame = read_landed(Path(landing_dir), "liquidations", columns=columns, filters=filters, problems=problems)
    return normalise_liquidations(frame if len(frame) else pd.DataFrame(columns=LIQUIDATION_COLUMNS))


class RejectedSegment(NamedTuple):
    """A bad segment set aside: its original file (relative to the landing), where it is now, why.

    `moved_to` is None when the landing could not be changed (read-only to this reader): the segment
    stays where it was, listed and skipped, and is counted again by the next run.
    """

    original: str
    moved_to: str | None
    reason: str


def _free_rejected_name(folder: Path, segment: Path) -> Path:
    """`<seq>.parquet` in `folder`, or `<seq>-<n>.parquet` when a different file already holds that name."""
    candidate = folder / segment.name
    n = 0
    while candidate.exists() and not os.path.samefile(candidate, segment):
        n += 1
        candidate = folder / f"{segment.name[: -len(SEGMENT_SUFFIX)]}-{n}{SEGMENT_SUFFIX}"
    return candidate


# What os.link raises on a file system without hard links (some network and FUSE mounts).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


def _set_aside(folder: Path, segment: Path) -> tuple[Path, bool]:
    """`segment` hard-linked into `folder` under a free name: (that name, linked). Where the file
    system has no hard links it is renamed there instead (linked False): one atomic step as well."""
    while True:
        target = _free_rejected_name(folder, segment)
        try:
            os.link(segment, target)
            return target, True
        except FileExistsError:
            if os.path.samefile(target, segment):
                return target, True
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            os.rename(segment, target)
            return target, False


def reject_segment(landing_dir: Path, segment: Path, reason: str, rejected_by: str) -> RejectedSegment | None:
    """Move a bad segment into `rejected/<kind>/` with a sidecar naming the original file and the reason.

    Never deletes data: the segment is hard-linked under its new name (atomic, never over another
    file), the sidecar written atomically, and only then the original name removed, so a crash at
    any point leaves the bytes under at least one name and a re-run finishes the move (renamed
    aside in one step where the file system has no hard links). None when
    the segment is already gone (another reader moved it first): only one reader counts it.
    """
    root, segment = Path(landing_dir), Path(segment)
    kind = segment.parent.name
    if kind not in LANDING_KINDS or segment.parent.parent.resolve() != root.resolve():
        raise ValueError(f"{segment} is not a segment of the landing folder {root}")
    folder = root / REJECTED_DIR / kind
    folder.mkdir(parents=True, exist_ok=True)
    try:
        target, linked = _set_aside(folder, segment)
    except FileNotFoundError:
        return None
    sidecar = {
        "segment": f"{kind}/{segment.name}",
        "moved_to": f"{REJECTED_DIR}/{kind}/{target.name}",
        "reason": reason,
        "rejected_by": rejected_by,
        "rejected_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(sidecar, indent=1).encode()
    _write_atomically(target.with_name(target.name[: -len(SEGMENT_SUFFIX)] + SIDECAR_SUFFIX), lambda h: h.write(text))
    if linked:
        try:
            os.unlink(segment)
        except FileNotFoundError:
            return None
    _fsync_dir(segment.parent)
    return RejectedSegment(sidecar["segment"], sidecar["moved_to"], reason)


def reject_segments(landing_dir: Path, problems: Sequence[SegmentProblem], rejected_by: str) -> list[RejectedSegment]:
    """Move every listed bad segment aside (see `reject_segment`): the ones this call moved, in order, and
    the ones it could not move (landing not writable), listed with `moved_to` None and why."""
    first_reasons: dict[Path, str] = {}
    for problem in problems:
        first_reasons.setdefault(Path(problem.path), problem.reason)
    done = []
    for path, reason in first_reasons.items():
        try:
            moved = reject_segment(landing_dir, path, reason, rejected_by)
        except OSError as error:  # a read-only or full landing: listed and skipped, as before the move existed
            moved = RejectedSegment(f"{path.parent.name}/{path.name}", None, f"{reason}; not moved aside: {error}")
        if moved is not None:
            done.append(moved)
    return done


def list_rejected(landing_dir: Path) -> list[RejectedSegment]:
    """Every segment moved aside so far, from the sidecars, in name order."""
    found = []
    for sidecar in sorted((Path(landing_dir) / REJECTED_DIR).glob(f"*/*{SIDECAR_SUFFIX}")):
        if sidecar.name.startswith(TEMP_PREFIX):
            continue
        record = json.loads(sidecar.read_text())
        found.append(RejectedSegment(record["segment"], record["moved_to"], record["reason"]))
    return found
