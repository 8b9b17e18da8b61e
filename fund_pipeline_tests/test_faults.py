"""The fault suite (bench/faults.py): its runner reports what a case did, and a small run of it holds."""

from __future__ import annotations

import pytest

from bench.fault_records import FaultCase, Outcome
from bench.faults import CASES, QUICK_CASES, run, run_case, table


def test_every_point_of_the_issue_has_cases_and_names_are_unique():
    assert {case.point for case in CASES} == {1, 2, 3, 4, 5, 6, 7}
    assert len({case.name for case in CASES}) == len(CASES)
    assert {case.point for case in CASES if case.name in QUICK_CASES} == {1, 2, 3, 4, 5, 6, 7}


def test_a_case_that_raises_did_not_hold_and_the_table_says_so(tmp_path):
    def broken(folder, quick):
        raise RuntimeError("the fault escaped")

    result = run_case(FaultCase(9, "broken", "nothing escapes", broken), tmp_path, quick=True)
    assert result.outcome == Outcome(False, "unexpected RuntimeError: the fault escaped", False, None, None)
    assert "| 9 | broken | nothing escapes | unexpected RuntimeError: the fault escaped | no | no | - | - |" in table(
        [result]
    )


@pytest.mark.slow  # a Dagster run, the emulator and a loopback stream: about 10 s
def test_a_small_run_of_the_suite_holds_every_case_and_loses_nothing():
    result = run(quick=True)
    assert result.figures["cases tried"] == len(QUICK_CASES)
    assert result.figures["cases held"] == len(QUICK_CASES), result.notes
    assert result.figures["rows lost"] == 0 and result.figures["corrupt segments"] == 0
    assert result.figures["cases measuring rows"] >= 2 and result.figures["cases measuring segments"] >= 2
