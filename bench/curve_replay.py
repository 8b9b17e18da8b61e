"""Curve replay, vectorised: `replay_curves` against the streaming builders on the same prints.

The output must be identical (frame equality, exact floats) to `build_curves_streaming`, which is
timed in the same run as the reference. The prints hold `venue`/`symbol` as categoricals (see
`bench.curve_data`); one replay with the same columns as object strings is timed for context.
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from bench._common import BenchResult, best_of, best_wall_and_cpu, quick_parser, report
from bench.curve_data import N_STREAMS, predicted_prints
from fund_pipeline.domain.curve import SnapshotPolicy, build_curves_streaming, replay_curves

TARGET_PRINTS_PER_S = 100e6
FULL = {"n_prints": 10_000_000, "repeats": 5}
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
    figures = {
        "prints": len(prints),
        "streams": N_STREAMS,
        "venue/symbol dtype": f"{prints['venue'].dtype}/{prints['symbol'].dtype}",
    }
    all_identical, roll_cpu_rate = True, 0.0
    roll_output: tuple | None = None
    for label, policy in POLICIES.items():
        replay_wall, replay_cpu, (replayed, replay_stats) = best_wall_and_cpu(
            partial(replay_curves, prints, policy), size["repeats"]
        )
        streaming_wall, streaming_cpu, (streamed, streaming_stats) = best_wall_and_cpu(
            partial(build_curves_streaming, prints, policy), size["repeats"]
        )
        same = identical(replayed, streamed) and replay_stats == streaming_stats
        all_identical &= same
        if label == "roll":
            roll_cpu_rate, roll_output = len(prints) / replay_cpu, (replayed, replay_stats)
        figures |= {
            f"[{label}] snapshots": len(replayed),
            f"[{label}] replay_curves s (wall / CPU)": f"{replay_wall:.4f} / {replay_cpu:.4f}",
            f"[{label}] replay_curves prints/s (wall)": len(prints) / replay_wall,
            f"[{label}] replay_curves prints/s (CPU)": len(prints) / replay_cpu,
            f"[{label}] streaming s (wall / CPU)": f"{streaming_wall:.4f} / {streaming_cpu:.4f}",
            f"[{label}] replay speed-up vs streaming (CPU)": streaming_cpu / replay_cpu,
            f"[{label}] identical frames and stats": same,
        }
    as_text = prints.astype({"venue": object, "symbol": object})
    text_seconds, (text_replayed, text_stats) = best_of(lambda: replay_curves(as_text, POLICIES["roll"]), 1)
    assert roll_output is not None, "POLICIES has a roll policy"
    text_same = identical(text_replayed, roll_output[0]) and text_stats == roll_output[1]
    all_identical &= text_same
    figures |= {
        "[roll, object-string venue/symbol] replay_curves prints/s (wall)": len(prints) / text_seconds,
        "[roll, object-string venue/symbol] identical to categorical": text_same,
    }
    return BenchResult(
        name="curve replay, vectorised",
        target=f"≥ {TARGET_PRINTS_PER_S:,.0f} prints/s (roll policy, CPU time), identical output",
        met=roll_cpu_rate >= TARGET_PRINTS_PER_S and all_identical,
        agree=all_identical,
        figures=figures,
        notes=[
            "times are best of the runs and include the frame → arrays conversion inside replay_curves",
            "the verdict uses CPU time (the machine is shared); wall time is reported next to it",
        ],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
