"""Hedging: weekly baskets formed Monday 12:00 UTC from the past 30 days, and their next-week record."""

from dataclasses import replace

import dagster as dg
import numpy as np
import pandas as pd

from fund_pipeline.defs.models.assets import stored_model
from fund_pipeline.defs.partitions import WEEKLY_PARTITIONS, weeks_before
from fund_pipeline.defs.scope import weekly_windows
from fund_pipeline.domain.basket_eval import bootstrap_percentiles, compare_carry_sources, evaluate_basket
from fund_pipeline.domain.baskets import (
    CARRY_SOURCES,
    HEDGE_BAR_COLUMNS,
    HEDGE_PRINT_COLUMNS,
    WEIGHT_SUM_TOLERANCE,
    BasketConfig,
    CandidateWindow,
    build_weekly_baskets,
    candidate_window,
    universe_day,
    window_tracking,
)
from fund_pipeline.domain.forecast import forecast_as_of
from fund_pipeline.domain.forecast_horizons import FORECAST_INPUT_WARMUP, forecast_frame
from fund_pipeline.domain.quality import basket_violations
from fund_pipeline.plots import markdown_image, markdown_table, weights_and_tracking
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse

WEEK = pd.Timedelta(days=7)
DEFAULTS = BasketConfig()
# Legs below this share are summed into one bar: a chart of 150 slivers shows nothing.
PLOTTED_WEIGHT = 0.005


class HedgeBasketConfig(dg.Config):
    """Targets to hedge (venue, ccxt symbol) and how baskets are sized: `BasketConfig`'s fields and defaults.

    lam defaults to 0.5, a tie-breaker: among baskets that track about equally well the one that
    earns more funding wins, but tracking is never given up for carry (`BasketConfig` shows the
    arithmetic). The lookback is in whole days here.
    """

    targets: list[list[str]] = [["binance", "BTC/USDT:USDT"], ["binance", "ETH/USDT:USDT"]]
    lam: float = DEFAULTS.lam
    basket_notional_usd: float = DEFAULTS.basket_notional_usd
    max_volume_share: float = DEFAULTS.max_volume_share
    lookback_days: int = DEFAULTS.lookback.days
    pca_components: int | None = DEFAULTS.pca_components
    min_weight_to_report: float = DEFAULTS.min_weight_to_report
    carry_source: str = DEFAULTS.carry_source
    # Also form each week's basket with the other carry source, for basket_performance to compare.
    compare_carry_sources: bool = True

    def target_pairs(self) -> list[tuple[str, str]]:
        bad = [t for t in self.targets if len(t) != 2]
        if bad:
            raise ValueError(f"HedgeBasketConfig.targets: each target is [venue, symbol], got {bad}")
        return [(venue, symbol) for venue, symbol in self.targets]

    def basket_config(self) -> BasketConfig:
        return BasketConfig(
            lam=self.lam,
            basket_notional_usd=self.basket_notional_usd,
            max_volume_share=self.max_volume_share,
            lookback=pd.Timedelta(days=self.lookback_days),
            pca_components=self.pca_components,
            min_weight_to_report=self.min_weight_to_report,
            carry_source=self.carry_source,
        )


def universe_as_of(warehouse: Warehouse, as_of: pd.Timestamp) -> pd.DataFrame:
    """Markets in the universe on `universe_day(as_of)`: listed then, whatever happened to them after."""
    day = universe_day(as_of)
    return warehouse.read("market_universe", {"date": (day, day + pd.Timedelta(days=1))}, ["venue", "symbol"])


def inputs_before(warehouse: Warehouse, as_of: pd.Timestamp, lookback: pd.Timedelta):
    """Universe, listed bars and settled prints (the columns baskets use) of the lookback before `as_of`
    (bars from one hour earlier)."""
    universe = universe_as_of(warehouse, as_of)
    window = {"ts": (as_of - lookback - pd.Timedelta(hours=1), as_of)}
    bars = warehouse.read("market_bars", window, HEDGE_BAR_COLUMNS)
    prints = warehouse.settled_prints(as_of - lookback, as_of, columns=HEDGE_PRINT_COLUMNS)
    listed = bars.merge(universe, on=["venue", "symbol"])
    return universe, listed, prints


def tracking_plot(weights: pd.DataFrame, window: CandidateWindow, target: tuple[str, str]) -> str:
    """Weights and the in-sample cumulative return of the target against its basket."""
    tracking = window_tracking(weights, window.returns, target)
    as_of, lookback = window.as_of, window.end - window.start
    legs = weights.set_index(["venue", "symbol"])["weight"]
    shown = legs[legs >= PLOTTED_WEIGHT]
    labels = pd.Series(shown.to_numpy(), index=[f"{v}:{s.split('/')[0]}" for v, s in shown.index])
    labels[f"{len(legs) - len(shown)} others"] = legs[legs < PLOTTED_WEIGHT].sum()
    png = weights_and_tracking(
        labels,
        tracking,
        f"hedge for {target[0]} {target[1]} formed {as_of:%Y-%m-%d %H:%M}; "
        f"tracking over the {lookback.days} days before (in sample)",
    )
    return markdown_image(png, "basket")


def forecast_carry(warehouse: Warehouse, key: str, as_of: pd.Timestamp) -> pd.Series | str:
    """The week's 7-day forecast of each stream's mean 8h rate as of `as_of`, or why there is none."""
    model = stored_model(warehouse, key, as_of)
    if isinstance(model, str):
        return f"no forecast model for the week: {model}"
    features = warehouse.read("feature_store", {"funding_time": (as_of - FORECAST_INPUT_WARMUP, as_of)})
    if features.empty:
        return f"no feature_store rows in the {FORECAST_INPUT_WARMUP.days} days before {as_of}"
    latest = forecast_as_of(model, forecast_frame(features), as_of, "7d")
    return latest.set_index(["venue", "symbol"])["y_8h"]


# (weights, summary) tables of the configured carry source's baskets, and of the other source's.
TRADED_TABLES = ("weekly_hedge_baskets", "weekly_hedge_summary")
COMPARED_TABLES = ("weekly_hedge_baskets_compared", "weekly_hedge_summary_compared")


@dg.asset(
    partitions_def=WEEKLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="hedging",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "cvxpy"},
    deps=[
        "market_bars",
        "raw_funding_prints",
        "market_universe",
        "funding_forecast_model",
        dg.AssetDep("feature_store", partition_mapping=weeks_before(FORECAST_INPUT_WARMUP)),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "basket_weights_valid_and_optimal",
            asset="weekly_hedge_baskets",
            description="Every basket solved to optimality with Σw = 1 and 0 ≤ w ≤ cap.",
        )
    ],
)
def weekly_hedge_baskets(context: dg.AssetExecutionContext, config: HedgeBasketConfig, warehouse: Warehouse):
    """Per target: weights minimising tracking error minus λ·carry, capped by volume, as of the week start."""
    basket_config = config.basket_config()
    targets = config.target_pairs()
    others = [c for c in CARRY_SOURCES if c != basket_config.carry_source] if config.compare_carry_sources else []
    sources = [basket_config.carry_source, *others]
    all_weights, all_summaries, plots, notes = [], [], {}, {}
    for key, as_of, _ in weekly_windows(context):
        universe, bars, prints = inputs_before(warehouse, as_of, basket_config.lookback)
        if universe.empty:
            raise dg.Failure(f"weekly_hedge_baskets {key}: no market_universe on the day before {as_of}")
        carry = forecast_carry(warehouse, key, as_of) if "forecast_7d" in sources else None
        window = candidate_window(bars, prints, as_of, basket_config.lookback)
        for source in sources:
            if source == "forecast_7d" and isinstance(carry, str):
                if source == basket_config.carry_source:
                    raise dg.Failure(f"weekly_hedge_baskets {key}: carry_source forecast_7d, but {carry}")
                notes[key] = f"no forecast-carry basket to compare: {carry}"
                context.log.warning(f"week {key}: {notes[key]}")
                continue
            source_config = replace(basket_config, carry_source=source)
            forecast = carry if isinstance(carry, pd.Series) else None
            weights, summary = build_weekly_baskets(
                bars, prints, as_of, targets, source_config, forecast_carry=forecast, window=window
            )
            weights_table, summary_table = TRADED_TABLES if source == basket_config.carry_source else COMPARED_TABLES
            at = {"as_of": as_of}
            warehouse.replace(weights_table, weights, at)
            warehouse.replace(summary_table, summary, at)
            if source != basket_config.carry_source:
                continue
            all_weights.append(weights)
            all_summaries.append(summary)
            for target in targets:
                legs = weights.loc[(weights["target_venue"] == target[0]) & (weights["target_symbol"] == target[1])]
                if len(legs):
                    plots[f"basket_{target[0]}_{target[1].split('/')[0]}"] = dg.MetadataValue.md(
                        tracking_plot(legs, window, target)
                    )
    weights = pd.concat(all_weights, ignore_index=True)
    summary = pd.concat(all_summaries, ignore_index=True)
    violations = basket_violations(weights, summary, WEIGHT_SUM_TOLERANCE)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(weights),
            "carry_source": basket_config.carry_source,
            "compared_with": ", ".join(sources[1:]) or "none",
            "weeks_without_comparison": dg.MetadataValue.json(notes),
            "summary": dg.MetadataValue.md(
                markdown_table(summary.drop(columns=["as_of"]).tail(len(targets)).set_index("target_symbol"))
            ),
            **plots,
        }
    )
    yield dg.AssetCheckResult(
        check_name="basket_weights_valid_and_optimal",
        passed=not violations,
        metadata={"baskets": len(summary), "violations": violations},
    )


class BasketPerformanceConfig(dg.Config):
    bootstrap_resamples: int = 2000
    seed: int = 7


@dg.asset(
    group_name="hedging",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=["weekly_hedge_baskets", "market_bars", "raw_funding_prints"],
)
def basket_performance(config: BasketPerformanceConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Each basket over the week after it was formed, never in-sample, with bootstrap percentiles.

    Baskets of both carry sources (the traded one and the compared one, when stored) are evaluated on
    the same weeks; basket_carry_comparison holds the percentiles per source and of their difference.
    """
    traded = warehouse.read(TRADED_TABLES[0])
    if traded.empty:
        raise dg.Failure("basket_performance: no weekly_hedge_baskets stored yet")
    weights = pd.concat([traded, warehouse.read(COMPARED_TABLES[0])], ignore_index=True)
    latest_bar = warehouse.latest("market_bars", "ts")
    if latest_bar is None:
        raise dg.Failure("basket_performance: no market_bars stored")
    records = []
    for (as_of, source), legs in weights.groupby(["as_of", "carry_source"]):
        end = as_of + WEEK
        if end > latest_bar + pd.Timedelta(hours=1):
            continue
        bars = warehouse.read("market_bars", {"ts": (as_of - pd.Timedelta(hours=1), end)})
        prints = warehouse.settled_prints(as_of, end)
        records.append(evaluate_basket(legs, bars, prints, as_of, end).assign(carry_source=source))
    if not records:
        raise dg.Failure("basket_performance: no basket has a complete following week of bars yet")
    performance = pd.concat(records, ignore_index=True)
    warehouse.replace("basket_performance", performance, {})
    comparison = compare_carry_sources(performance, config.bootstrap_resamples, config.seed)
    warehouse.replace("basket_carry_comparison", comparison, {})
    traded_source = str(traded["carry_source"].iloc[0])
    mine = performance.loc[performance["carry_source"] == traded_source]
    rmse_pct = bootstrap_percentiles(
        mine["tracking_rmse_ann"].to_numpy(), np.mean, config.bootstrap_resamples, seed=config.seed
    )
    pnl_pct = bootstrap_percentiles(
        mine["net_funding_pnl"].to_numpy(), np.mean, config.bootstrap_resamples, seed=config.seed
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(performance),
            "weeks_evaluated": int(performance["as_of"].nunique()),
            "traded_carry_source": traded_source,
            "tracking_rmse_ann_mean_p5_p50_p95": [round(float(x), 5) for x in rmse_pct.to_numpy()],
            "net_funding_pnl_mean_p5_p50_p95": [round(float(x), 6) for x in pnl_pct.to_numpy()],
            "carry_sources_compared": dg.MetadataValue.md(
                markdown_table(comparison.set_index(["carry_source", "metric"]))
                if len(comparison)
                else "only one carry source stored"
            ),
            "performance": dg.MetadataValue.md(
                markdown_table(mine.drop(columns=["start", "end", "carry_source"]).set_index("as_of"))
            ),
        }
    )
