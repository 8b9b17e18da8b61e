"""Every benchmark's --quick mode, in-process: the optimised path and its reference must agree.

Benchmarks are not tests of speed: nothing here looks at a time. The two longest quick runs sit in
`test_bench_smoke_end_to_end.py`, so that the suite's two workers (one file each) share the load.
"""

from __future__ import annotations

import importlib

import pytest

from bench.__main__ import BENCHMARKS

pytestmark = pytest.mark.slow  # every benchmark once, in --quick mode

# Whole-pipeline benchmarks (Dagster end to end): the minutes of the smoke runs.
END_TO_END = ("real_sample", "universe")


def quick_paths_agree(name: str) -> None:
    result = importlib.import_module(f"bench.{name}").run(quick=True)
    assert result.agree, f"{name}: optimised and reference outputs differ: {result.figures}"


@pytest.mark.parametrize("name", [b for b in BENCHMARKS if b not in END_TO_END])
def test_quick_benchmark_paths_agree(name):
    quick_paths_agree(name)
