"""Forecast skill on the shipped real sample: walk-forward, out of sample, per venue and horizon.

Files source → settled prints → replayed curves → feature store with the domain functions (no
Dagster; the feature frame is cached under /tmp), then one model per week trained only on targets
settled before the week, scored against every trader baseline at the same information time.

The weeks are split once, before any result is seen: the first DEV_WEEKS weeks are where the model
was designed and its settings chosen (`--design` scores them); every later week is held out and is
what the verdict uses.
The target (model ≥ 10 % better than the best baseline on MAE at every horizon and on SMAPE
overall, held-out weeks) is reported, never asserted; beside each overall figure, its 90 % interval
with whole weeks resampled (`forecast_significance`). "SMAPE overall" is every venue's and horizon's
forecasts at once against each venue and horizon's own best baseline (`pooled_verdict`); SMAPE per
horizon is reported too.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from bench._common import BenchResult, quick_parser, report
from fund_pipeline.domain.curve import SnapshotPolicy, replay_curves
from fund_pipeline.domain.features import FEATURE_COLUMNS, build_feature_store
from fund_pipeline.domain.forecast import (
    InsufficientHistoryError,
    ModelParams,
    build_forecasts,
    train_forecast_model,
)
from fund_pipeline.domain.forecast_horizons import HORIZONS, forecast_frame
from fund_pipeline.domain.forecast_metrics import ALL_VENUES, landing_rates, scorecard, verdicts
from fund_pipeline.domain.forecast_significance import TARGET_PCT, pooled_verdict, verdict_intervals
from fund_pipeline.sources.files import FileSource

CACHE = Path(os.environ.get("FORECAST_SKILL_CACHE", "/tmp/fund_pipeline_forecast_skill"))
SAMPLE_START = pd.Timestamp("2021-12-01", tz="UTC")
SAMPLE_END = pd.Timestamp("2024-01-01", tz="UTC")
FEATURES_START = SAMPLE_START + pd.Timedelta(days=8)
FIRST_WEEK = pd.Timestamp("2022-01-31 12:00", tz="UTC")
LAST_WEEK = pd.Timestamp("2023-12-18 12:00", tz="UTC")
DEV_WEEKS = 20
TRAINING_WINDOW = pd.Timedelta(days=120)
# The horizon's targets of a week's rows settle up to 7 days after it.
SCORING_LOOKAHEAD = pd.Timedelta(days=7)
# The EWMA and the mass-point run length of a week's first rows need the days before it.
INPUT_WARMUP = pd.Timedelta(days=7)
QUICK_WEEKS = 3


def sample_features() -> pd.DataFrame:
    """The real sample's feature store, built once by the domain functions and cached as Parquet."""
    path = CACHE / "features.parquet"
    if path.exists():
        return pd.read_parquet(path)
    source = FileSource.sample()
    prints = pd.concat([source.funding_prints(v, SAMPLE_START, SAMPLE_END) for v in source.venues()], ignore_index=True)
    settled = prints.loc[prints["kind"] == "settled"]
    curves = pd.concat(
        [
            replay_curves(block.sort_values(["ts", "funding_time"]), SnapshotPolicy())[0]
            for _, block in settled.groupby("venue")
        ],
        ignore_index=True,
    )
    features = build_feature_store(curves, settled, None, FEATURES_START, SAMPLE_END)
    CACHE.mkdir(parents=True, exist_ok=True)
    features.to_parquet(path)
    return features


def one_week(args: tuple[pd.DataFrame, pd.Timestamp, ModelParams]) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Train on the 120 days before the week, forecast the week: (forecasts, landing, seconds to train)."""
    features, week, params = args
    end = week + pd.Timedelta(days=7)
    train_rows = features.loc[(features["funding_time"] >= week - TRAINING_WINDOW) & (features["funding_time"] < week)]
    started = time.perf_counter()
    model = train_forecast_model(forecast_frame(train_rows), FEATURE_COLUMNS, week, params)
    seconds = time.perf_counter() - started
    window = features.loc[
        (features["funding_time"] >= week - INPUT_WARMUP) & (features["funding_time"] < end + SCORING_LOOKAHEAD)
    ]
    forecasts = build_forecasts(model, forecast_frame(window), week, end)
    forecasts.insert(0, "week_start", week)
    return forecasts, landing_rates(forecasts), seconds


def walk_forward(features: pd.DataFrame, weeks: list[pd.Timestamp], params: ModelParams) -> tuple[pd.DataFrame, list]:
    jobs = [(features, week, params) for week in weeks]
    results, skipped = [], []
    with ProcessPoolExecutor(max_workers=2) as pool:
        for done, (week, outcome) in enumerate(zip(weeks, pool.map(_safe_week, jobs), strict=True), start=1):
            if isinstance(outcome, str):
                skipped.append((week, outcome))
            else:
                results.append(outcome)
            print(f"  week {week:%Y-%m-%d} done ({done}/{len(weeks)})", flush=True)
    return pd.concat([r[0] for r in results], ignore_index=True), [r[2] for r in results] + skipped


def _safe_week(args):
    try:
        return one_week(args)
    except InsufficientHistoryError as exc:
        return str(exc)


def verdict_table(forecasts: pd.DataFrame) -> pd.DataFrame:
    table = verdicts(scorecard(forecasts))
    return table.pivot_table(
        index=["venue", "horizon"], columns="metric", values=["best_baseline", "model_vs_best_pct"], aggfunc="first"
    )


def run(quick: bool = False, params: ModelParams | None = None, every: int = 1, design: bool = False) -> BenchResult:
    """Score the held-out weeks (every `every`-th of them; 1 = all), or with `design` the design weeks instead."""
    # The weeks already run in two processes: one horizon at a time in each.
    params = dataclasses.replace(params or ModelParams(), fit_workers=1)
    features = sample_features()
    all_weeks = list(pd.date_range(FIRST_WEEK, LAST_WEEK, freq="7D"))
    weeks = (all_weeks[:DEV_WEEKS] if design else all_weeks[DEV_WEEKS:])[::every]
    if quick:
        weeks = weeks[:QUICK_WEEKS]
    started = time.perf_counter()
    forecasts, timing = walk_forward(features, weeks, params)
    elapsed = time.perf_counter() - started
    train_seconds = [t for t in timing if isinstance(t, float)]
    split = FIRST_WEEK + pd.Timedelta(weeks=DEV_WEEKS)
    held_out = forecasts.loc[(forecasts["week_start"] < split) if design else (forecasts["week_start"] >= split)]
    card = scorecard(held_out)
    table = verdicts(card)
    overall = table.loc[table["venue"] == ALL_VENUES].set_index(["horizon", "metric"])
    figures: dict = {
        "weeks scored": f"{held_out['week_start'].nunique()} {'design' if design else 'held out'}",
        "held-out weeks sampled": f"every {every}" if every > 1 else "all",
        "forecasts scored (all horizons)": len(held_out),
        "mean training seconds per weekly model (4 horizons)": sum(train_seconds) / max(len(train_seconds), 1),
        "walk-forward wall seconds (2 processes)": elapsed,
    }
    intervals = verdict_intervals(held_out).set_index(["venue", "horizon", "metric"])
    for horizon in HORIZONS:
        for metric in ("mae", "smape"):
            if (horizon, metric) in overall.index:
                row = overall.loc[(horizon, metric)]
                figures[f"{horizon} {metric}: model vs best baseline ({row['best_baseline']}) %"] = float(
                    row["model_vs_best_pct"]
                )
                spread = intervals.loc[(ALL_VENUES, horizon, metric)]
                figures[f"{horizon} {metric}: 90 % interval, weeks resampled %"] = (
                    f"{spread['p5_pct']:+.1f} .. {spread['p95_pct']:+.1f}, "
                    f"model better in {100 * spread['model_better_share']:.0f} % of draws"
                )
    for (venue, horizon), cell in table.loc[table["venue"] != ALL_VENUES].groupby(["venue", "horizon"], sort=True):
        by_metric = cell.set_index("metric")
        figures[f"{venue} {horizon}: MAE / SMAPE vs best baseline %"] = " / ".join(
            f"{by_metric.loc[m, 'model_vs_best_pct']:+.1f} ({by_metric.loc[m, 'best_baseline']})"
            for m in ("mae", "smape")
        )
    pooled = pooled_verdict(held_out, "smape")
    figures["smape over all horizons and venues: model vs each cell's best baseline %"] = (
        f"{pooled['model_vs_best_pct']:+.2f} ({pooled['p5_pct']:+.1f} .. {pooled['p95_pct']:+.1f}; "
        f"model {pooled['model']:.4f}, best baselines {pooled['best_baselines']:.4f})"
    )
    # The target: MAE at every horizon, SMAPE overall.
    reached = [
        overall.loc[(h, "mae"), "model_vs_best_pct"] <= TARGET_PCT for h in HORIZONS if (h, "mae") in overall.index
    ]
    reached.append(pooled["model_vs_best_pct"] <= TARGET_PCT)
    per_venue = table.loc[table["venue"] != ALL_VENUES]
    losses = per_venue.loc[per_venue["model_vs_best_pct"] >= 0]
    notes = [
        f"DESIGN weeks {FIRST_WEEK:%Y-%m-%d} .. {split:%Y-%m-%d}: for choosing the model, not its verdict"
        if design
        else f"held-out weeks from {split:%Y-%m-%d}; the first {DEV_WEEKS} weeks "
        "were used to design the model and are not in these figures",
        f"per venue × horizon × metric the model loses to the best baseline in {len(losses)} of {len(per_venue)} cells",
    ]
    if not quick:
        CACHE.mkdir(parents=True, exist_ok=True)
        part = "design" if design else "held_out"
        forecasts.to_parquet(CACHE / f"forecasts_{part}.parquet")
        table.to_csv(CACHE / f"verdicts_{part}.csv", index=False)
        card.to_csv(CACHE / f"scorecard_{part}.csv", index=False)
        intervals.reset_index().to_csv(CACHE / f"verdict_intervals_{part}.csv", index=False)
        landing_rates(held_out).to_csv(CACHE / f"landing_{part}.csv", index=False)
        notes.append(f"tables in {CACHE}")
    return BenchResult(
        name="forecast_skill",
        target="model >= 10 % below the best baseline on MAE at every horizon and on SMAPE over all horizons "
        "and venues (each cell's best), held out",
        met=bool(all(reached)),
        agree=True,
        figures=figures,
        notes=notes,
    )


if __name__ == "__main__":
    parser = quick_parser(__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1, help="score every n-th held-out week (1 = all)")
    parser.add_argument("--design", action="store_true", help="score the design weeks instead of the held-out ones")
    args = parser.parse_args()
    report(run(quick=args.quick, every=args.every, design=args.design))
