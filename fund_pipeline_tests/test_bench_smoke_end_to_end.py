"""The end-to-end benchmarks' --quick mode (see test_bench_smoke.py): a file of their own, so they run
beside the other smoke runs on the suite's second worker."""

from __future__ import annotations

import pytest

from bench.__main__ import BENCHMARKS
from fund_pipeline_tests.test_bench_smoke import END_TO_END, quick_paths_agree

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", END_TO_END)
def test_quick_end_to_end_benchmark_paths_agree(name):
    assert name in BENCHMARKS, f"{name} is not listed in bench/__main__.py"
    quick_paths_agree(name)
