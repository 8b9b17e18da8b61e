"""Hedge baskets out of sample: the week after formation, tracking and funding PnL, bootstrap percentiles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.baskets import HEDGE_PRINT_COLUMNS, correlation, hourly_returns, on_the_hour
from fund_pipeline.domain.prints import SchemaError, require_columns
from fund_pipeline.domain.time import HOURS_PER_YEAR, to_utc

BASKET_PERFORMANCE_COLUMNS = [
    "as_of",
    "target_venue",
    "target_symbol",
    "start",
    "end",
    "n_obs",
    "n_missing_hours",
    "tracking_rmse",
    "tracking_rmse_ann",
    "correlation",
    "basket_return",
    "target_return",
    "basket_funding_pnl",
    "target_funding_pnl",
    "net_funding_pnl",
]


def evaluate_basket(weights: pd.DataFrame, bars: pd.DataFrame, prints: pd.DataFrame, start, end) -> pd.DataFrame:
    """Out-of-sample over [start, end), per (as_of, target): tracking, returns and funding PnL of the hedge.

    The hedge is long the target, short the basket at constant weights (rebalanced hourly).
    Hours where the target or a constituent has no bar are dropped and counted in n_missing_hours.
    basket_funding_pnl = Σ_i w_i Σ rate_i (the short basket earns its funding), target_funding_pnl =
    −Σ rate_target (the long target pays), both per unit notional over settled prints in [start, end).
    """
    require_columns(weights, ["as_of", "target_venue", "target_symbol", "venue", "symbol", "weight"], "basket weights")
    require_columns(prints, HEDGE_PRINT_COLUMNS, "funding prints")
    start, end = on_the_hour(start, "start"), on_the_hour(end, "end")
    returns = hourly_returns(bars, start, end)
    funding_time = to_utc(prints["funding_time"])
    settled = prints.loc[(funding_time >= start) & (funding_time < end) & (prints["kind"] == "settled")]
    funding = settled.groupby(["venue", "symbol"])["rate"].sum()

    rows = []
    for (as_of, target_venue, target_symbol), basket in weights.groupby(
        ["as_of", "target_venue", "target_symbol"], sort=True
    ):
        names = list(zip(basket["venue"], basket["symbol"], strict=True))
        target = (target_venue, target_symbol)
        missing = [name for name in [target, *names] if name not in returns.columns]
        if missing:
            raise SchemaError(f"evaluate_basket: no bars in [{start}, {end}) for {missing} (target {target})")
        block = returns[[target, *names]]
        complete = block.notna().all(axis=1).to_numpy()
        if not complete.any():
            raise SchemaError(f"evaluate_basket: no hour in [{start}, {end}) with all bars for target {target}")
        target_returns = block.iloc[complete, 0].to_numpy()
        basket_returns = block.iloc[complete, 1:].to_numpy() @ basket["weight"].to_numpy()
        tracking = target_returns - basket_returns
        rmse = float(np.sqrt(np.mean(tracking**2)))
        basket_funding = float(funding.reindex(names).fillna(0.0).to_numpy() @ basket["weight"].to_numpy())
        target_funding = -float(funding.get(target, 0.0))
        rows.append(
            {
                "as_of": as_of,
                "target_venue": target_venue,
                "target_symbol": target_symbol,
                "start": start,
                "end": end,
                "n_obs": int(complete.sum()),
                "n_missing_hours": int((~complete).sum()),
                "tracking_rmse": rmse,
                "tracking_rmse_ann": rmse * np.sqrt(HOURS_PER_YEAR),
                "correlation": correlation(basket_returns, target_returns),
                "basket_return": float(np.prod(1.0 + basket_returns) - 1.0),
                "target_return": float(np.prod(1.0 + target_returns) - 1.0),
                "basket_funding_pnl": basket_funding,
                "target_funding_pnl": target_funding,
                "net_funding_pnl": basket_funding + target_funding,
            }
        )
    return pd.DataFrame(rows, columns=BASKET_PERFORMANCE_COLUMNS)


def bootstrap_percentiles(
    values,
    statistic=np.mean,
    n_resamples: int = 2000,
    percentiles=(5.0, 50.0, 95.0),
    seed: int = 0,
    block: int = 1,
) -> pd.Series:
    """Moving-block bootstrap percentiles of `statistic` (called as statistic(samples, axis=1)).

    Blocks of `block` consecutive values keep serial correlation (hourly tracking errors are not
    i.i.d.); block=1 is the plain bootstrap. Deterministic for a given seed.
    """
    x = np.asarray(values, dtype="float64")
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"bootstrap_percentiles: need a 1-D sample of >= 2 values, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_percentiles: values contain NaN or infinite entries")
    if not 1 <= block <= len(x):
        raise ValueError(f"bootstrap_percentiles: block must be in [1, {len(x)}], got {block}")
    if n_resamples < 1:
        raise ValueError(f"bootstrap_percentiles: n_resamples must be >= 1, got {n_resamples}")
    q = np.asarray(percentiles, dtype="float64")
    if np.any((q < 0) | (q > 100)):
        raise ValueError(f"bootstrap_percentiles: percentiles must be in [0, 100], got {list(q)}")
    n = len(x)
    n_blocks = -(-n // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(n_resamples, n_blocks))
    index = (starts[:, :, None] + np.arange(block)).reshape(n_resamples, -1)[:, :n]
    stats = np.asarray(statistic(x[index], axis=1), dtype="float64")
    if stats.shape != (n_resamples,):
        raise ValueError(f"bootstrap_percentiles: statistic must reduce axis 1 to ({n_resamples},), got {stats.shape}")
    return pd.Series(np.percentile(stats, q), index=pd.Index(q, name="percentile"), name="value")


COMPARISON_COLUMNS = ["carry_source", "metric", "n", "mean", "p5", "p50", "p95"]
_COMPARED = ["tracking_rmse_ann", "net_funding_pnl"]


def compare_carry_sources(performance: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per carry source, bootstrap percentiles of the mean next-week tracking RMSE and net funding PnL.

    Where both sources formed a basket for the same (as_of, target), the paired difference of each
    metric (forecast_7d − trailing) is bootstrapped too, as carry_source "forecast_7d − trailing":
    the baskets share their weeks, so the difference is what tells the sources apart.
    """
    require_columns(performance, ["carry_source", "as_of", "target_venue", "target_symbol", *_COMPARED], "performance")
    rows = []
    for source, block in performance.groupby("carry_source", sort=True):
        rows += _bootstrap_rows(str(source), block, n_resamples, seed)
    keys = ["as_of", "target_venue", "target_symbol"]
    wide = performance.pivot_table(index=keys, columns="carry_source", values=_COMPARED, aggfunc="first")
    if {"forecast_7d", "trailing"} <= set(performance["carry_source"]):
        paired = pd.DataFrame(
            {metric: wide[(metric, "forecast_7d")] - wide[(metric, "trailing")] for metric in _COMPARED}
        ).dropna()
        rows += _bootstrap_rows("forecast_7d − trailing", paired, n_resamples, seed)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def _bootstrap_rows(label: str, block: pd.DataFrame, n_resamples: int, seed: int) -> list[dict]:
    rows = []
    for metric in _COMPARED:
        values = block[metric].to_numpy(dtype="float64")
        if len(values) < 2:
            continue
        p5, p50, p95 = bootstrap_percentiles(values, np.mean, n_resamples, seed=seed).to_numpy()
        rows.append(
            {
                "carry_source": label,
                "metric": metric,
                "n": len(values),
                "mean": float(values.mean()),
                "p5": p5,
                "p50": p50,
                "p95": p95,
            }
        )
    return rows
