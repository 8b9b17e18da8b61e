"""Training cost of one weekly forecast model at universe scale: 300 bases × 5 venues, 120 days of features.

Four venues settle every 8h and one hourly (as Hyperliquid does), so the 120 days hold ~1.3 M
feature rows. Rates follow a per-stream AR(1) around 0.01 %/8h that sits exactly on the interest
rate for spells, so the mass-point classifiers have real work to do; the other features are noise
of the right shape. Timed: `forecast_frame` plus `train_forecast_model` (every horizon's
regressor, the next window's and 1 day's mass classifiers) with the weekly asset's params (one
CatBoost thread per fit, two horizons fitted at once: the machine's two cores), against the
reference path (`bench.reference_forecast_training`: the whole frame copied and sorted per horizon,
the horizons fitted one after the other) in the same run on the same frame; the two models must be
byte-identical and forecast the same.

Wall, CPU and the time the process's threads spent runnable but waiting for a core (Linux
schedstat) are printed side by side: on the shared 2-core machine a wall time far above the CPU
time is that wait, not I/O (training reads and writes nothing).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from bench._common import BenchResult, quick_parser, report
from bench.reference_forecast_training import reference_train_forecast_model
from fund_pipeline.domain.features import FEATURE_COLUMNS
from fund_pipeline.domain.forecast import (
    ModelParams,
    TrainedModel,
    predict_y,
    train_forecast_model,
    with_mass_features,
)
from fund_pipeline.domain.forecast_horizons import forecast_frame

TARGET_SECONDS = 60.0
VENUES = {"binance": 8.0, "bybit": 8.0, "okx": 8.0, "deribit": 8.0, "hyperliquid": 1.0}
FULL = {"bases": 300, "days": 120}
QUICK = {"bases": 5, "days": 30}
WEEK = pd.Timestamp("2025-06-02 12:00", tz="UTC")


def universe_features(bases: int, days: int, seed: int = 0) -> pd.DataFrame:
    """Feature rows of every stream over the `days` before WEEK, with next-window targets."""
    rng = np.random.default_rng(seed)
    frames = []
    for venue, interval_h in VENUES.items():
        n = int(days * 24 / interval_h)
        times = pd.date_range(end=WEEK - pd.Timedelta(hours=interval_h), periods=n, freq=f"{int(interval_h)}h")
        for b in range(bases):
            shocks = rng.normal(0, 4e-5, n)
            x = np.empty(n)
            x[0] = 1e-4
            for i in range(1, n):
                x[i] = 1e-4 + 0.85 * (x[i - 1] - 1e-4) + shocks[i]
            x[rng.random(n) < 0.4] = 1e-4
            rate = x * interval_h / 8.0
            frame = pd.DataFrame({c: rng.normal(size=n) for c in FEATURE_COLUMNS})
            frame["venue"], frame["symbol"], frame["base"] = venue, f"B{b}/USDT:USDT", f"B{b}"
            frame["funding_time"], frame["interval_h"] = times, interval_h
            frame["rate"], frame["rate_8h"] = rate, x
            frame["rate_mean_21"] = pd.Series(rate).rolling(21, min_periods=1).mean().to_numpy()
            frame["target_time"] = frame["funding_time"].shift(-1)
            frame["target_rate"] = frame["rate"].shift(-1)
            frame["target_interval_h"] = interval_h
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class Timed(NamedTuple):
    """One training run: the model and what it cost."""

    model: TrainedModel
    wall_s: float
    cpu_s: float
    core_wait_s: float
    frame_s: float


def core_wait_seconds() -> float:
    """Seconds this process's live threads have spent runnable, waiting for a core (NaN off Linux)."""
    tasks = Path("/proc/self/task")
    if not tasks.exists():
        return float("nan")
    total = 0
    for task in tasks.iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (FileNotFoundError, IndexError, ValueError):
            continue
    return total / 1e9


def timed(train: Callable[..., TrainedModel], features: pd.DataFrame, params: ModelParams) -> Timed:
    wait, cpu, started = core_wait_seconds(), time.process_time(), time.perf_counter()
    frame = forecast_frame(features)
    frame_s = time.perf_counter() - started
    model = train(frame, FEATURE_COLUMNS, WEEK, params)
    return Timed(model, time.perf_counter() - started, time.process_time() - cpu, core_wait_seconds() - wait, frame_s)


def same_forecasts(a: TrainedModel, b: TrainedModel, frame: pd.DataFrame) -> bool:
    """Both models forecast the week-before rows alike at every horizon (float tolerance)."""
    rows_a, rows_b = with_mass_features(a, frame), with_mass_features(b, frame)
    return all(np.allclose(predict_y(a, rows_a, h), predict_y(b, rows_b, h), rtol=1e-12, atol=0) for h in a.horizons)


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    features = universe_features(size["bases"], size["days"])
    params = ModelParams()
    load_before = os.getloadavg()[0]
    optimised = timed(train_forecast_model, features, params)
    reference = timed(reference_train_forecast_model, features, params)
    probe = forecast_frame(features).groupby(["venue", "symbol"]).tail(8).reset_index(drop=True)
    identical = optimised.model.to_bytes() == reference.model.to_bytes()
    agree = identical and same_forecasts(optimised.model, reference.model, probe)
    figures = {
        "streams": size["bases"] * len(VENUES),
        "feature rows (120 days)": len(features),
        "rows trained per horizon": {h: m.n_train for h, m in optimised.model.horizons.items()},
        "forecast_frame seconds": optimised.frame_s,
        "train seconds (frame + 4 regressors + 2 mass classifiers)": optimised.wall_s,
        "cpu seconds": optimised.cpu_s,
        "seconds waiting for a core": optimised.core_wait_s,
        "reference train seconds (whole frame copied and sorted per horizon)": reference.wall_s,
        "reference cpu seconds": reference.cpu_s,
        "reference seconds waiting for a core": reference.core_wait_s,
        "speed-up (reference / optimised wall)": reference.wall_s / optimised.wall_s,
        "models byte-identical": identical,
        "mass points found": len(optimised.model.mass_points),
        "load average (1 min) before / after": f"{load_before:.2f} / {os.getloadavg()[0]:.2f}",
    }
    return BenchResult(
        name="model_training",
        target=f"one weekly model at 300 bases × 5 venues, 120 days, under {TARGET_SECONDS:.0f} s on 2 cores",
        met=optimised.wall_s < TARGET_SECONDS,
        agree=agree,
        figures=figures,
        notes=[
            f"each horizon keeps its {params.max_rows_per_horizon:,} most recent rows (ModelParams)",
            f"CatBoost: regressor {params.iterations} trees, classifier {params.classifier_iterations}, depth "
            f"{params.depth}, learning rate {params.learning_rate}, {params.border_count} borders, "
            f"{params.thread_count} thread per fit, {params.fit_workers} horizons at once; the reference path fits "
            "with the same params, one horizon after the other",
        ],
    )


if __name__ == "__main__":
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))
