"""Curve replay, vectorised: `replay_curves` against the streaming builders on the same prints.

The output must be identical (frame equality, exact floats) to `build_curves_streaming`, which is
timed in the same run as the reference.
"""

from __future__ import annotations

import pandas as pd

from bench._common import BenchResult, best_of, quick_parser, report
from bench.curve_data import N_STREAMS, predicted_prints
from fund_pipeline.domain.curve import SnapshotPolicy, build_curves_streaming, replay_curves

TARGET_PRINTS_PER_S = 100e6
FULL = {"n_prints": 10_000_000, "repeats": 3}
QUICK = {"n_prints": 80_000, "repeats": 1}
POLICIES = {"roll": SnapshotPolicy(), "every_n_seconds 600": SnapshotPolicy("every_n_seconds", 600.0)}


def identical(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Exact equality of two curve frames (NaN == NaN), dtypes included."""
    try:
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    except AssertionError:
        return False
    return True


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    prints = predicted_prints(size["n_prints"])
    figures = {"prints": len(prints), "streams": N_STREAMS}
    all_identical, roll_rate = True, 0.0
    for label, policy in POLICIES.items():
        replay_seconds, (replayed, replay_stats) = best_of(lambda: replay_curves(prints, policy), size["repeats"])
        streaming_seconds, (streamed, streaming_stats) = best_of(lambda: build_curves_streaming(prints, policy), size["repeats"])
        same = identical(replayed, streamed) and replay_stats == streaming_stats
        all_identical &= same
        rate = len(prints) / replay_seconds
        if label == "roll":
            roll_rate = rate
        figures |= {
            f"[{label}] snapshots": len(replayed),
            f"[{label}] replay_curves s": replay_seconds,
            f"[{label}] replay_curves prints/s": rate,
            f"[{label}] streaming s": streaming_seconds,
            f"[{label}] replay speed-up vs streaming": streaming_seconds / replay_seconds,
            f"[{label}] identical frames and stats": same,
        }
    return BenchResult(
        name="curve replay, vectorised",
        target=f"≥ {TARGET_PRINTS_PER_S:,.0f} prints/s (roll policy), identical output",
        met=roll_rate >= TARGET_PRINTS_PER_S and all_identical,
        agree=all_identical,
        figures=figures,
        notes=["times are best of the runs and include the frame → arrays conversion inside replay_curves"],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
