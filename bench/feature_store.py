"""Feature store: `build_feature_store` over a year of hourly data for 100 venue × symbol series,
against a per-row Python loop computing the same per-stream features (bench/reference_features.py).

The loop runs on a subset (every 10th stream, the whole year); its time is extrapolated by input
size (bars + curve rows) and its values compared with the library's on that subset.
"""

from __future__ import annotations

import pandas as pd

from bench._common import BenchResult, best_of, quick_parser, report
from bench.reference_features import compare_features, feature_rows_by_loop
from fund_pipeline.domain.curve import replay_curves
from fund_pipeline.domain.features import FEATURE_WARMUP, build_feature_store
from fund_pipeline.venues.simulated import SIM_EPOCH, SimulatedMarket

TARGET_RATIO = 50.0
TARGET_SECONDS = 5.0
FULL = {"streams": 100, "days": 365, "subset_every": 10, "repeats": 2}
QUICK = {"streams": 6, "days": 12, "subset_every": 2, "repeats": 1}
TARGET_LOOKAHEAD = pd.Timedelta(days=1)


def market_inputs(n_streams: int, days: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp, pd.Timestamp]:
    """Settled prints, hourly bars and replayed curves for the first `n_streams` streams (sorted), warm-up included."""
    market = SimulatedMarket(n_extra_bases=1)
    start = SIM_EPOCH + FEATURE_WARMUP
    end = start + pd.Timedelta(days=days)
    prints = pd.concat([market.funding_prints(v, SIM_EPOCH, end + TARGET_LOOKAHEAD) for v in market.venues()], ignore_index=True)
    streams = prints[["venue", "symbol"]].drop_duplicates().sort_values(["venue", "symbol"]).iloc[:n_streams]
    if len(streams) < n_streams:
        raise RuntimeError(f"the simulator lists {len(streams)} streams, fewer than {n_streams}")
    keep = streams.assign(keep=True)
    prints = prints.merge(keep, on=["venue", "symbol"], how="inner").drop(columns="keep")
    bars = pd.concat([market.bars(v, SIM_EPOCH, end) for v in streams["venue"].unique()], ignore_index=True)
    bars = bars.merge(keep, on=["venue", "symbol"], how="inner").drop(columns="keep")
    curves, _ = replay_curves(prints[prints["funding_time"] < end])
    return curves, prints, bars, start, end


def _streams(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    return frame.merge(keys, on=["venue", "symbol"], how="inner")


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    curves, prints, bars, start, end = market_inputs(size["streams"], size["days"])
    seconds, features = best_of(lambda: build_feature_store(curves, prints, bars, start, end), size["repeats"])

    keys = curves[["venue", "symbol"]].drop_duplicates().sort_values(["venue", "symbol"]).iloc[:: size["subset_every"]]
    sub_curves, sub_prints, sub_bars = _streams(curves, keys), _streams(prints, keys), _streams(bars, keys)
    loop_seconds, loop_rows = best_of(lambda: feature_rows_by_loop(sub_curves, sub_prints, sub_bars, start, end), 1)
    library_subset = build_feature_store(sub_curves, sub_prints, sub_bars, start, end)
    comparison = compare_features(library_subset, loop_rows)

    scale = (len(bars) + len(curves)) / (len(sub_bars) + len(sub_curves))
    loop_extrapolated = loop_seconds * scale
    ratio = loop_extrapolated / seconds
    figures = {
        "streams": curves[["venue", "symbol"]].drop_duplicates().shape[0],
        "hourly bars": len(bars),
        "curve rows (incl. warm-up)": len(curves),
        "feature rows": len(features),
        "build_feature_store s": seconds,
        "loop streams (subset)": len(keys),
        "loop s on subset": loop_seconds,
        "loop s extrapolated to all streams": loop_extrapolated,
        "speed-up vs loop": ratio,
        "subset rows compared": comparison["rows"],
        "subset unmatched rows": comparison["unmatched"],
        "subset NaN-pattern mismatches": comparison["nan_mismatch"],
        "subset worst relative difference": comparison["worst_rel"],
    }
    return BenchResult(
        name="feature store",
        target=f"≥ {TARGET_RATIO:.0f}× the per-row loop and < {TARGET_SECONDS:.0f} s",
        met=ratio >= TARGET_RATIO and seconds < TARGET_SECONDS,
        agree=comparison["agree"],
        figures=figures,
        notes=[
            "loop extrapolated from the subset by input rows (bars + curve rows)",
            "loop covers the per-stream columns; pc1/pc2 and cross-venue dispersion are library-only (ratio is conservative)",
        ],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
