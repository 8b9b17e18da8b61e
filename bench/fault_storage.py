"""Fault cases of the landing and the warehouse (issue #14 points 1, 2, 3, 5, 7), through the real assets.

Each provokes its fault on a temporary landing or warehouse and measures what was kept: rows stored
before against after, good rows landed against stored, segments left unreadable or changed. The
asset runs reuse the test suite's injected source (`MutatedSource`) and run helper.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.fault_records import AT_ONCE_S, FaultCase, Outcome, names_all, timed, unreadable_segments
from fund_pipeline.defs.live.assets import live_curve
from fund_pipeline.domain.curve import SnapshotPolicy, replay_curves
from fund_pipeline.domain.prints import MAX_PLAUSIBLE_RATE, SchemaError, storable_prints
from fund_pipeline.domain.records import PRINT_COLUMNS, FundingPrint
from fund_pipeline.live.landing import (
    LandingLockedError,
    SegmentWriter,
    frame_table,
    last_seq,
    list_rejected,
    prints_table,
    read_landed,
)
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.sources.files import SourceConfigError
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.warehouse import LOCK_WAIT_S, WarehouseError
from fund_pipeline_tests.asset_runs import MutatedSource, all_assets, check_results, materialisation_metadata, run
from fund_pipeline_tests.lock_scripts import HOLD_LOCK, OPEN_ONCE, frame

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
BTC = "BTC/USDT:USDT"
SYMBOLS = [BTC, "ETH/USDT:USDT", "SOL/USDT:USDT"]
WINDOW = "2025-03-03-08:00"
WINDOW_START = pd.Timestamp("2025-03-03 08:00", tz="UTC")
DAY, NEXT_DAY = pd.Timestamp("2025-01-05", tz="UTC"), pd.Timestamp("2025-01-06", tz="UTC")
PRINT_KEY = ["venue", "symbol", "kind", "funding_time", "ts"]


def missing_rows(expected: pd.DataFrame, stored: pd.DataFrame, columns: list[str]) -> int:
    """Rows of `expected` with no identical row (on `columns`) in `stored`."""
    if expected.empty:
        return 0
    if stored.empty:
        return len(expected)
    found = expected[columns].merge(stored[columns].drop_duplicates(), on=columns, how="left", indicator=True)
    return int((found["_merge"] == "left_only").sum())


# --- point 1: bad landing segments are moved aside, not fatal -----------------------------------------------------


def _land_window(root: Path, minutes: range) -> int:
    """One good segment of three symbols' prints, a snapshot per print, in the window; the snapshot rows landed."""
    funding = WINDOW_START + pd.Timedelta(hours=8)
    times = [WINDOW_START + pd.Timedelta(minutes=m) for m in minutes]
    records = [
        FundingPrint("binance", symbol, symbol[:3], "predicted", funding.value, t.value, t.value, 1e-4 * (1 + k), 8.0,
                     1.0, 1.0, "ws")
        for t in times
        for k, symbol in enumerate(SYMBOLS)
    ]  # fmt: skip
    table = prints_table(records)
    snapshots, _ = replay_curves(table.to_pandas(), SnapshotPolicy("every_update"))
    writer = SegmentWriter(root)
    writer.write({"snapshots": frame_table(snapshots), "prints": table})
    writer.close()
    return len(snapshots)


def _plant_bad_segments(root: Path) -> dict[str, bytes]:
    """Four bad segments after the good ones (0 bytes, truncated, a text rate, no `level`): name -> bytes."""
    seq = last_seq(root) + 1
    newest = f"{seq - 1:012d}.parquet"
    good_prints = (root / "prints" / newest).read_bytes()
    prints = pq.read_table(root / "prints" / newest)
    text_rate = [str(rate) for rate in prints["rate"].to_pylist()]
    names = [f"snapshots/{seq:012d}.parquet"] + [f"prints/{seq + k:012d}.parquet" for k in (1, 2)]
    names.append(f"snapshots/{seq + 3:012d}.parquet")
    (root / names[0]).write_bytes(b"")
    (root / names[1]).write_bytes(good_prints[: len(good_prints) // 2])
    pq.write_table(
        prints.set_column(prints.schema.get_field_index("rate"), "rate", pa.array(text_rate)), root / names[2]
    )
    pq.write_table(pq.read_table(root / "snapshots" / newest).drop_columns(["level"]), root / names[3])
    return {name: (root / name).read_bytes() for name in names}


def _materialise_live_curve(folder: Path):
    warehouse = Warehouse(database=str(folder / "w.duckdb"))
    resources = {"landing": LandingZone(path=str(folder / "landing")), "warehouse": warehouse}
    result = dg.materialize(
        [live_curve], partition_key=WINDOW, resources=resources, run_config=QUIET, raise_on_error=False
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return result, checks.get("live_segments_readable"), warehouse.read("live_curve")


def _landing_with_bad_segments(folder: Path) -> tuple[int, dict[str, bytes]]:
    root = folder / "landing"
    good_rows = _land_window(root, range(0, 60))
    bad = _plant_bad_segments(root)
    good_rows += _land_window(root, range(60, 120))
    return good_rows, bad


def _damage(root: Path, bad: dict[str, bytes]) -> int:
    """Unreadable segments left in the live folders, plus bad segments not kept byte for byte in rejected/."""
    moved = {r.original: (root / r.moved_to) for r in list_rejected(root) if r.moved_to is not None}
    kept = sum(name in moved and moved[name].read_bytes() == data for name, data in bad.items())
    return unreadable_segments(root) + len(bad) - kept


def bad_segments_moved_aside(folder: Path, quick: bool) -> Outcome:
    good_rows, bad = _landing_with_bad_segments(folder)
    result, check, stored = _materialise_live_curve(folder)
    rejected = list_rejected(folder / "landing")
    listed = check.metadata["rejected"].data if check is not None else {}
    held = (
        result.success
        and check is not None
        and not check.passed
        and check.severity == dg.AssetCheckSeverity.WARN
        and check.metadata["segments_rejected"].value == len(bad)
        and {r.original for r in rejected} == set(bad)
        and len(stored) == good_rows
    )
    observed = (
        f"run {'succeeded' if result.success else 'FAILED'}; {len(rejected)} moved to rejected/, "
        f"WARN check {'failed' if check is not None and not check.passed else 'passed'}; "
        f"{len(stored)}/{good_rows} good rows stored"
    )
    clear = bool(rejected) and all(r.reason and listed.get(r.original) == r.reason for r in rejected)
    return Outcome(held, observed, clear, good_rows - len(stored), _damage(folder / "landing", bad))


def rejected_segments_not_recounted(folder: Path, quick: bool) -> Outcome:
    good_rows, bad = _landing_with_bad_segments(folder)
    _materialise_live_curve(folder)
    result, check, stored = _materialise_live_curve(folder)
    counted = check.metadata["segments_rejected"].value if check is not None else None
    total = check.metadata["rejected_in_landing"].value if check is not None else None
    held = result.success and check is not None and check.passed and counted == 0 and total == len(bad)
    verdict = "passed" if check is not None and check.passed else "failed"
    observed = f"re-run: check {verdict}, {counted} counted, {total} in rejected/"
    return Outcome(held, observed, None, good_rows - len(stored), _damage(folder / "landing", bad))


def _ingest(folder: Path, defect: str, first: str = "2025-01-05|binance", last: str = "2025-01-05|binance"):
    warehouse = Warehouse(database=str(folder / "w.duckdb"))
    resources = {
        "warehouse": warehouse,
        "market_source": MutatedSource(defect=defect),
        "landing": LandingZone(path=str(folder / "landing")),
    }
    result = run(
        all_assets(), ["raw_funding_prints"], resources, dg.DagsterInstance.ephemeral(), first, last, QUIET, False
    )
    return result, warehouse.read("raw_funding_prints")


def _failure_text(result) -> str:
    return str([e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"])


def _materialised(result) -> int:
    return sum(e.event_type_value == "ASSET_MATERIALIZATION" for e in result.all_events)


def unrelated_partition_unaffected(folder: Path, quick: bool) -> Outcome:
    root = folder / "landing"
    SegmentWriter(root).close()
    (root / "prints" / "000000000000.parquet").write_bytes(b"PAR1 cut short")
    result, stored = _ingest(folder, "none")
    source = SimulatedMarket(bases=("BTC", "ETH")).funding_prints("binance", DAY, NEXT_DAY)
    warned = check_results(result).get("landed_segments_readable") is False
    skipped = (
        materialisation_metadata(result, "raw_funding_prints").get("landing_segments_skipped")
        if result.success
        else None
    )
    held = result.success and warned and skipped == 1
    verdict = "succeeded" if result.success else "FAILED"
    observed = f"day × venue run {verdict}, {len(stored)} rows, landing check warned: {warned}"
    return Outcome(held, observed, None, missing_rows(source, stored, PRINT_COLUMNS), unreadable_segments(root) - 1)


# --- point 2: a multi-partition run writes all or nothing -----------------------------------------------------------


def multi_partition_all_or_nothing(folder: Path, quick: bool) -> Outcome:
    good, before = _ingest(folder, "none", last="2025-01-05|bybit")
    failed, after = _ingest(folder, "shifted_then_bybit_fails", last="2025-01-05|bybit")
    unchanged = len(before) == len(after) and missing_rows(before, after, PRINT_COLUMNS) == 0
    held = good.success and not failed.success and _materialised(failed) == 0 and unchanged
    observed = (
        f"second venue failed the run: {not failed.success}; materialisations recorded {_materialised(failed)}; "
        f"binance rows unchanged: {unchanged}"
    )
    return Outcome(
        held, observed, "bybit is down" in _failure_text(failed), missing_rows(before, after, PRINT_COLUMNS), None
    )


# --- point 3: locks released, a conflicting writer named, bad paths refused at once ---------------------------------


def conflicting_writer_named(folder: Path, quick: bool) -> Outcome:
    database = str(folder / "w.duckdb")
    Warehouse(database=database).replace("t", frame("2025-03-01", "binance", [1.0, 2.0]), {})
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, database], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        attempt = timed(lambda: Warehouse(database=database).read("t"))
    finally:
        holder.kill()
        holder.wait()
    after = Warehouse(database=database).read("t")
    clear = names_all(attempt.error, f"PID {holder.pid}", "in use by another process", "kill")
    held = isinstance(attempt.error, WarehouseError) and attempt.seconds < LOCK_WAIT_S + 3 and clear
    observed = f"{type(attempt.error).__name__} after {attempt.seconds:.1f} s naming PID {holder.pid}: {clear}"
    return Outcome(held, observed, clear, 2 - len(after), None)


def failed_write_releases_lock(folder: Path, quick: bool) -> Outcome:
    wh = Warehouse(database=str(folder / "w.duckdb"))
    wh.replace("t", frame("2025-03-01", "binance", [1.0]), {})
    failed = timed(lambda: wh.replace("t", frame("2025-03-01", "binance", [1.0]).assign(rate=["x"]), {}))
    other = subprocess.run(
        [sys.executable, "-c", OPEN_ONCE, wh.database], capture_output=True, text=True, timeout=60, check=False
    )
    opened = other.stdout.strip() == "opened"
    held = failed.error is not None and opened
    observed = f"write failed ({type(failed.error).__name__}); another process then opened the file: {opened}"
    return Outcome(held, observed, names_all(failed.error, "rate"), 1 - len(wh.read("t")), None)


NOBODY = 65534


def _as_nobody(database: str) -> tuple[float, str]:
    """Open the warehouse in a forked child that dropped root for `nobody`: (seconds, what it raised)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, so the interpreter under root's home is not needed
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            attempt = timed(partial(_open_and_read, database))
            os.write(write_end, f"{attempt.seconds:.3f} {type(attempt.error).__name__} {attempt.error}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        seconds, _, message = answer.read().partition(" ")
    os.waitpid(pid, 0)
    return float(seconds), message


def read_only_folder_fails_at_once(folder: Path, quick: bool) -> Outcome:
    """As root every folder is writable, so there the attempt runs as `nobody`; as anyone else, in process."""
    outer = Path(tempfile.mkdtemp(prefix="faults-ro-"))  # traversable by nobody, unlike the suite's own folder
    try:
        outer.chmod(0o755)
        read_only = outer / "ro"
        read_only.mkdir()
        read_only.chmod(0o555)
        database = str(read_only / "w.duckdb")
        if os.geteuid() == 0:
            seconds, message = _as_nobody(database)
        else:
            attempt = timed(partial(_open_and_read, database))
            seconds, message = attempt.seconds, f"{type(attempt.error).__name__} {attempt.error}"
    finally:
        shutil.rmtree(outer, ignore_errors=True)
    clear = message.startswith("WarehouseError") and "not writable" in message
    who = "as nobody" if os.geteuid() == 0 else "as this user"
    said = message.replace(database, "<read-only folder>/w.duckdb")[:80]
    return Outcome(clear and seconds < AT_ONCE_S, f"{who}, {seconds:.2f} s: {said}", clear, None, None)


def _open_and_read(database: str) -> None:
    Warehouse(database=database).read("t")


def invalid_paths_fail_at_once(folder: Path, quick: bool) -> Outcome:
    junk = folder / "notes.duckdb"
    junk.write_text("not a database\n" * 100)
    a_file = folder / "a_file"
    a_file.write_text("")
    cases = [
        (str(folder), "is a directory"),
        (str(junk), "not a DuckDB database"),
        (str(a_file / "w.duckdb"), "cannot be created"),
    ]
    attempts = [(timed(partial(_open_and_read, database)), words) for database, words in cases]
    clear = all(isinstance(a.error, WarehouseError) and names_all(a.error, words) for a, words in attempts)
    slowest = max(a.seconds for a, _ in attempts)
    observed = f"directory, non-DuckDB file, folder under a file: named {clear}, slowest {slowest:.2f} s"
    return Outcome(clear and slowest < AT_ONCE_S, observed, clear, None, None)


def second_landing_writer_refused(folder: Path, quick: bool) -> Outcome:
    root = folder / "landing"
    first = SegmentWriter(root)
    rows = [FundingPrint("okx", BTC, "BTC", "predicted", 0, i, i, 1e-4, 8.0, 1.0, 1.0, "ws") for i in range(10)]
    first.write({"prints": prints_table(rows)})
    second = timed(lambda: SegmentWriter(root))
    first.close()
    reopened = timed(lambda: SegmentWriter(root).close())
    clear = isinstance(second.error, LandingLockedError) and names_all(second.error, str(root), "another collector")
    held = clear and second.seconds < AT_ONCE_S and reopened.error is None
    freed = reopened.error is None
    observed = f"second writer refused in {second.seconds:.2f} s naming the folder; lock free after close: {freed}"
    return Outcome(held, observed, clear, len(rows) - len(read_landed(root, "prints")), unreadable_segments(root))


# --- point 5: rates and keys fit to store before any write -----------------------------------------------------------


def implausible_rates_refused(folder: Path, quick: bool) -> Outcome:
    good, before = _ingest(folder, "none")
    words = {"huge": "implausible rate", "nan": "NaN", "inf": "infinite"}
    refused = {}
    lost = 0
    for defect, word in words.items():
        result, after = _ingest(folder, defect)
        refused[defect] = not result.success and word in _failure_text(result)
        lost += missing_rows(before, after, PRINT_COLUMNS) + max(0, len(after) - len(before))
    held = good.success and all(refused.values())
    observed = "refused naming it: " + ", ".join(f"{d} {'yes' if ok else 'NO'}" for d, ok in refused.items())
    return Outcome(held, observed, all(refused.values()), lost, None)


def infinite_annualisation_refused(folder: Path, quick: bool) -> Outcome:
    """9 % per minute: under the per-interval cap, but a year of it compounds past the largest float."""
    t = pd.Timestamp("2025-01-01 08:00", tz="UTC")
    row = FundingPrint(
        "okx", BTC, "BTC", "predicted", t.value, t.value - 60_000_000_000, t.value, 0.09, 1 / 60, 1.0, 1.0, "ws"
    )
    prints = pd.DataFrame([row], columns=PRINT_COLUMNS)
    for col in ("funding_time", "ts", "received_at"):
        prints[col] = pd.to_datetime(prints[col], utc=True)
    attempt = timed(lambda: storable_prints(prints))
    clear = isinstance(attempt.error, SchemaError) and names_all(attempt.error, "implausible", BTC)
    verdict = type(attempt.error).__name__ if attempt.error else "accepted"
    observed = f"0.09 per 1-minute interval (cap {MAX_PLAUSIBLE_RATE}): {verdict}"
    return Outcome(clear, observed, clear, None, None)


def duplicates_collapse(folder: Path, quick: bool) -> Outcome:
    result, stored = _ingest(folder, "duplicates")
    source = SimulatedMarket(bases=("BTC", "ETH")).funding_prints("binance", DAY, NEXT_DAY)
    meta = materialisation_metadata(result, "raw_funding_prints") if result.success else {}
    one_per_key = not stored.duplicated(PRINT_KEY).any() and len(stored) == len(source)
    counted = meta.get("duplicate_rows_collapsed") == 1 and meta.get("key_conflicts_resolved") == 1
    held = result.success and one_per_key and counted
    observed = f"{len(stored)} rows for {len(source)} keys; 1 copy and 1 conflict counted: {counted}"
    return Outcome(held, observed, None, missing_rows(source, stored, PRINT_KEY), None)


def in_memory_refused(folder: Path, quick: bool) -> Outcome:
    attempt = timed(lambda: Warehouse(database=":memory:"))
    clear = names_all(attempt.error, "in-memory")
    return Outcome(clear, f"{type(attempt.error).__name__}: refused at load", clear, None, None)


# --- point 7: config errors refused at load, naming the field ------------------------------------------------------


def config_errors_named(folder: Path, quick: bool) -> Outcome:
    a_file = folder / "landing"
    a_file.write_text("")
    cases = [
        (lambda: MarketSourceResource(bases=[]), ValueError, ("bases",)),
        (lambda: MarketSourceResource(kind="bogus"), ValueError, ("kind",)),  # type: ignore[arg-type]
        (lambda: MarketSourceResource(kind="files").get(), SourceConfigError, ("files_root",)),
        (lambda: LandingZone(path=str(a_file)), ValueError, ("landing.path", "is a file")),
        (lambda: LandingZone(path=" "), ValueError, ("landing.path", "empty")),
        (lambda: Warehouse(database=""), ValueError, ("warehouse database",)),
    ]
    named = [isinstance(e := timed(make).error, kind) and names_all(e, *words) for make, kind, words in cases]
    observed = (
        f"{sum(named)}/{len(cases)} refused naming the field (bases, kind, files_root, landing.path x2, database)"
    )
    return Outcome(all(named), observed, all(named), None, None)


CASES = [
    FaultCase(
        1,
        "bad_segments_moved_aside",
        "run succeeds, 4 bad segments in rejected/ with reasons, WARN, all good rows",
        bad_segments_moved_aside,
    ),
    FaultCase(
        1,
        "rejected_not_recounted",
        "re-run passes the check, counts 0, rejected/ keeps 4",
        rejected_segments_not_recounted,
    ),
    FaultCase(
        1,
        "unrelated_partition_unaffected",
        "raw_funding_prints run succeeds beside a bad segment, WARN",
        unrelated_partition_unaffected,
    ),
    FaultCase(
        2,
        "multi_partition_all_or_nothing",
        "2nd venue fails: nothing written, nothing recorded",
        multi_partition_all_or_nothing,
    ),
    FaultCase(
        3,
        "conflicting_writer_named",
        f"WarehouseError < {LOCK_WAIT_S + 3:.0f} s naming the holder's PID",
        conflicting_writer_named,
    ),
    FaultCase(
        3,
        "failed_write_releases_lock",
        "another process opens the file after a failed write",
        failed_write_releases_lock,
    ),
    FaultCase(
        3, "read_only_folder_fails_at_once", "WarehouseError 'not writable' at once", read_only_folder_fails_at_once
    ),
    FaultCase(
        3,
        "invalid_paths_fail_at_once",
        "dir / junk file / folder under a file: named, < 2 s",
        invalid_paths_fail_at_once,
    ),
    FaultCase(
        3,
        "second_landing_writer_refused",
        "LandingLockedError naming the folder; freed on close",
        second_landing_writer_refused,
    ),
    FaultCase(
        5, "implausible_rates_refused", "rate 0.5, NaN, inf: run fails naming it, rows kept", implausible_rates_refused
    ),
    FaultCase(
        5,
        "infinite_annualisation_refused",
        "SchemaError 'implausible' naming the symbol",
        infinite_annualisation_refused,
    ),
    FaultCase(5, "duplicates_collapse", "one row per key, copy and conflict counted", duplicates_collapse),
    FaultCase(5, "in_memory_refused", "':memory:' refused at load", in_memory_refused),
    FaultCase(7, "config_errors_named", "each bad setting refused naming its field", config_errors_named),
]
