"""Fault suite (issue #14): every reliability case provoked for real, its outcome checked, a table of figures.

Each case runs a real fault against the real code on a temporary warehouse or landing, with the
exchange emulator or a loopback stream on 127.0.0.1 where a venue is needed, and states what must
happen. Per case the table gives what was observed, whether the error (or warning) named what was
wrong, the rows lost (stored before against after, landed against stored, or sent against landed;
"-" where no rows are at stake) and the segments left corrupt. The verdict: every case holds its
expected outcome, no row is lost and no segment is corrupt, the whole suite in under 3 minutes.

    python -m bench.faults [--quick] [--only CASE ...]     (--quick: one case per point, about 10 s)
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from bench._common import BenchResult, report
from bench.fault_live import CASES as LIVE_CASES
from bench.fault_records import FaultCase, Outcome
from bench.fault_storage import CASES as STORAGE_CASES

CASES: list[FaultCase] = sorted([*STORAGE_CASES, *LIVE_CASES], key=lambda case: case.point)
# --quick: one case per point of the issue that needs neither a Dagster ingest run nor seconds of streaming.
QUICK_CASES = [
    "bad_segments_moved_aside",
    "venue_down_fails_only_its_own",
    "invalid_paths_fail_at_once",
    "sensor_ignores_absurd_times_and_keys",
    "infinite_annualisation_refused",
    "reconnect_backs_off",
    "config_errors_named",
]
SUITE_LIMIT_S = 180.0


class CaseResult(NamedTuple):
    case: FaultCase
    outcome: Outcome
    seconds: float


def run_case(case: FaultCase, root: Path, quick: bool) -> CaseResult:
    """One case in its own folder; an exception the case did not expect is an outcome that did not hold."""
    folder = root / case.name
    folder.mkdir()
    started = time.monotonic()
    try:
        outcome = case.run(folder, quick)
    except Exception as error:  # noqa: BLE001 - reported as the case's failure, the suite goes on
        outcome = Outcome(False, f"unexpected {type(error).__name__}: {error}"[:110], False, None, None)
    return CaseResult(case, outcome, time.monotonic() - started)


def _measure(value: int | None) -> str:
    return "-" if value is None else str(value)


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _cell(text: str) -> str:
    return text.replace("|", "/")


def table(results: list[CaseResult]) -> str:
    """The markdown table of the run: one row per case."""
    lines = [
        "| # | case | expected | observed | held | clear error | rows lost | corrupt segments | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r.outcome
        lines.append(
            f"| {r.case.point} | {r.case.name} | {_cell(r.case.expected)} | {_cell(o.observed)} | {_yes_no(o.held)} | "
            f"{_yes_no(o.clear_error)} | {_measure(o.rows_lost)} | {_measure(o.corrupt_segments)} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def summary(results: list[CaseResult], wall_s: float) -> dict:
    judged = [r.outcome.clear_error for r in results if r.outcome.clear_error is not None]
    return {
        "cases tried": len(results),
        "cases held": sum(r.outcome.held for r in results),
        "errors judged clear": f"{sum(judged)} of {len(judged)}",
        "rows lost": sum(r.outcome.rows_lost or 0 for r in results),
        "cases measuring rows": sum(r.outcome.rows_lost is not None for r in results),
        "corrupt segments": sum(r.outcome.corrupt_segments or 0 for r in results),
        "cases measuring segments": sum(r.outcome.corrupt_segments is not None for r in results),
        "suite wall s": wall_s,
    }


def run(quick: bool = False, only: list[str] | None = None) -> BenchResult:
    names = only or (QUICK_CASES if quick else None)
    chosen = [case for case in CASES if names is None or case.name in names]
    logging.getLogger("fund_pipeline").setLevel(logging.CRITICAL)  # the faults' own warnings are the point
    root = Path(tempfile.mkdtemp(prefix="fund-pipeline-faults-"))
    started = time.monotonic()
    try:
        results = []
        for case in chosen:
            results.append(run_case(case, root, quick))
            print(f"  {case.name}: {'held' if results[-1].outcome.held else 'DID NOT HOLD'}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    wall_s = time.monotonic() - started
    print(table(results))
    figures = summary(results, wall_s)
    met = (
        figures["cases held"] == len(results)
        and figures["rows lost"] == 0
        and figures["corrupt segments"] == 0
        and wall_s < SUITE_LIMIT_S
    )
    return BenchResult(
        name="faults",
        target=f"every case holds, 0 rows lost, 0 corrupt segments, suite < {SUITE_LIMIT_S:.0f} s",
        met=met,
        agree=figures["cases held"] == len(results),
        figures=figures,
        notes=[f"{r.case.name}: {r.outcome.observed}" for r in results if not r.outcome.held],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one case per point of the issue (about 10 s)")
    parser.add_argument("--only", nargs="+", choices=[case.name for case in CASES], default=None)
    args = parser.parse_args()
    report(run(quick=args.quick, only=args.only))


if __name__ == "__main__":
    main()
