"""Curve building, streaming: `build_curves_streaming` (one FundingCurveBuilder per stream, fed with
update_batch) against the notebooks' per-print builder with a pandas frame per snapshot.

The per-print reference is far too slow for the full frame: it is timed on the first
`reference_prints` prints (all 20 streams, arrival order) and its per-print cost extrapolated.
"""

from __future__ import annotations

from bench._common import BenchResult, best_of, quick_parser, report
from bench.curve_data import N_STREAMS, predicted_prints
from bench.reference_curve import build_curves_per_print, max_abs_difference, snapshots_per_print
from fund_pipeline.domain.curve import FundingCurveBuilder, SnapshotPolicy, build_curves_streaming

TARGET_PRINTS_PER_S = 5e6
FULL = {"n_prints": 10_000_000, "reference_prints": 400_000, "update_prints": 100_000, "repeats": 3}
QUICK = {"n_prints": 80_000, "reference_prints": 80_000, "update_prints": 2_000, "repeats": 1}
# Both paths compute the same floating-point expressions; allow for pow() of Python vs numpy in the last ulp.
AGREE_ABS = 1e-12


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    prints = predicted_prints(size["n_prints"])
    policy = SnapshotPolicy()
    seconds, (curves, _) = best_of(lambda: build_curves_streaming(prints, policy), size["repeats"])

    subset = prints.iloc[: size["reference_prints"]]
    reference_seconds, reference = best_of(lambda: build_curves_per_print(subset), 1)
    library_subset, _ = build_curves_streaming(subset, policy)
    difference = max_abs_difference(library_subset, reference)

    update_subset = prints.iloc[: size["update_prints"]]
    update_seconds, _ = best_of(lambda: _feed_one_by_one(update_subset, policy), 1)

    per_print_reference = reference_seconds / len(subset)
    rate = len(prints) / seconds
    figures = {
        "prints": len(prints),
        "streams": N_STREAMS,
        "snapshots (roll policy)": len(curves),
        "build_curves_streaming s (best of runs)": seconds,
        "build_curves_streaming prints/s": rate,
        "reference prints timed": len(subset),
        "reference s on those": reference_seconds,
        "reference µs/print": per_print_reference * 1e6,
        "reference s extrapolated to all prints": per_print_reference * len(prints),
        "speed-up vs reference": per_print_reference * rate,
        "FundingCurveBuilder.update (1 print/call) prints/s": len(update_subset) / update_seconds,
        "max |library − reference| on the subset": difference,
    }
    return BenchResult(
        name="curve building, streaming",
        target=f"≥ {TARGET_PRINTS_PER_S:,.0f} prints/s on one core",
        met=rate >= TARGET_PRINTS_PER_S,
        agree=difference <= AGREE_ABS and len(reference) == len(library_subset) > 0,
        figures=figures,
        notes=[
            f"reference timed on the first {len(subset):,} prints and extrapolated per print",
            "update() one print per call is the live collector's worst case, shown for context (not the target path)",
        ],
    )


def _feed_one_by_one(prints, policy) -> int:
    """Every print through FundingCurveBuilder.update, one call per print."""
    return len(snapshots_per_print(prints, lambda venue, symbol: FundingCurveBuilder(venue, symbol, policy)))


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
