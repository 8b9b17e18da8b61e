"""Every benchmark's --quick mode, in-process: the optimised path and its reference must agree.

Benchmarks are not tests of speed: nothing here looks at a time.
"""

from __future__ import annotations

import importlib

import pytest

from bench.__main__ import BENCHMARKS

pytestmark = pytest.mark.slow  # every benchmark once, in --quick mode


@pytest.mark.parametrize("name", BENCHMARKS)
def test_quick_benchmark_paths_agree(name):
    result = importlib.import_module(f"bench.{name}").run(quick=True)
    assert result.agree, f"{name}: optimised and reference outputs differ: {result.figures}"
