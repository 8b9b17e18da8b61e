"""`funding_arbitrage`: per base, the best venue to be long and to be short, shortly before each 8h settlement.

Quotes are the venues' predicted rates of the open window (live prints landed in raw_funding_prints
and the history rebuilt in reconstructed_prints), and, when the week's forecast model is stored,
its forecast carry. The model is the weekly `funding_forecast_model`, fitted before the week; a
day whose week has none yet is ranked by the predicted rates only and says so in the metadata.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE
from fund_pipeline.defs.live.forecasts import model_or_note, week_start_of
from fund_pipeline.defs.market.assets import DAILY
from fund_pipeline.defs.scope import daily_spans
from fund_pipeline.domain.arbitrage import PREDICTED, ArbitrageCosts, QuoteRule, decision_times
from fund_pipeline.domain.arbitrage import funding_arbitrage as best_arbitrage
from fund_pipeline.domain.forecast import TrainedModel, forecast_as_of
from fund_pipeline.domain.forecast_horizons import FORECAST_INPUT_WARMUP, HORIZONS, forecast_frame
from fund_pipeline.domain.universe import LiquidityFilter
from fund_pipeline.plots import arbitrage_spreads, markdown_image, markdown_table
from fund_pipeline.resources import Warehouse

# Base-tier (no VIP, no token discount) taker fees per fill of each venue's perps, as the venues
# publish them: Binance USDⓈ-M and COIN-M 0.05 %, Bybit contracts 0.055 %, OKX swaps 0.05 %,
# Hyperliquid perps 0.045 % (tier 0), Deribit BTC/ETH perpetuals and USDC perpetuals 0.05 %.
DEFAULT_TAKER_FEES = {"binance": 0.0005, "bybit": 0.00055, "okx": 0.0005, "hyperliquid": 0.00045, "deribit": 0.0005}
_LIQUIDITY = LiquidityFilter()
DAY = pd.Timedelta(days=1)
# Reads are half-open: a print stamped exactly at a decision is known at it.
QUOTE_TIME_RESOLUTION = pd.Timedelta(microseconds=1)
TABLE_ROWS = 15


class ArbitrageConfig(dg.Config):
    """Taker fee per fill per venue (decimal), holding period the fees are amortised over, liquidity floors
    (the universe rule's, same defaults), when decisions are taken and how old a quote may be."""

    taker_fees: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_TAKER_FEES))
    holding_days: float = 7.0
    min_volume_usd_24h: float = _LIQUIDITY.min_volume_usd_24h
    min_open_interest_usd: float = _LIQUIDITY.min_open_interest_usd
    min_max_leverage: float = _LIQUIDITY.min_max_leverage
    decision_lead_minutes: int = 10
    max_quote_age_minutes: int = 30
    forecast_horizon: str = "7d"


ModelCache = dict[pd.Timestamp, tuple[TrainedModel | None, str]]


def forecast_carry(
    warehouse: Warehouse, as_of_times: pd.DatetimeIndex, horizon: str, models: ModelCache
) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """The week's model's mean 8h rate over `horizon` per stream at each as_of, and why a week has none.

    `models` keeps each week's stored model (or the reason there is none) across the days of a run."""
    if horizon not in HORIZONS:
        raise dg.Failure(f"funding_arbitrage: unknown forecast_horizon {horizon!r}; known: {list(HORIZONS)}")
    missing, usable = {}, []
    for as_of in as_of_times:
        week = week_start_of(as_of)
        if week not in models:
            models[week] = model_or_note(warehouse, week)
        model, note = models[week]
        if model is None or horizon not in model.horizons:
            missing[f"{week:%Y-%m-%d}"] = note or f"the week's model has no {horizon} horizon"
        else:
            usable.append((as_of, model))
    if not usable:
        return None, missing
    features = warehouse.read(
        "feature_store", {"funding_time": (as_of_times.min() - FORECAST_INPUT_WARMUP, as_of_times.max())}
    )
    if features.empty:
        return None, missing | {"features": "no feature_store rows before the decisions"}
    frame = forecast_frame(features)
    rows = [
        forecast_as_of(model, frame, as_of, horizon).assign(as_of=as_of).rename(columns={"y_8h": "rate_8h"})
        for as_of, model in usable
    ]
    return pd.concat(rows, ignore_index=True), missing


@dg.asset(
    deps=["raw_funding_prints", RECONSTRUCTED_TABLE, "market_universe", "feature_store"],
    **DAILY,
)
def funding_arbitrage(
    context: dg.AssetExecutionContext, config: ArbitrageConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Per base and decision time, the cross-venue long/short pair with the highest funding spread (APR) net
    of taker fees, by predicted rate and by forecast carry, among liquid markets of the day-before universe."""
    costs = ArbitrageCosts(config.taker_fees, config.holding_days)
    liquidity = LiquidityFilter(config.min_volume_usd_24h, config.min_open_interest_usd, config.min_max_leverage)
    rule = QuoteRule(pd.Timedelta(minutes=config.max_quote_age_minutes))
    parts = []
    excluded = {"outside_universe": 0, "below_liquidity_floors": 0}
    no_forecast: dict[str, str] = {}
    models: ModelCache = {}
    for start in (day for first, last in daily_spans(context) for day in pd.date_range(first, last, freq="D")[:-1]):
        end = start + DAY
        times = decision_times(start, end, pd.Timedelta(minutes=config.decision_lead_minutes))
        # every print that can be a quote at the day's decisions, live (landed) or rebuilt
        known = {"ts": (times.min() - rule.max_age, times.max() + QUOTE_TIME_RESOLUTION)}
        predicted = pd.concat(
            [warehouse.read("predicted_prints", known), warehouse.read(RECONSTRUCTED_TABLE, known)],
            ignore_index=True,
        )
        universe = warehouse.read("market_universe", {"date": (start - DAY, end)})
        if predicted.empty or universe.empty:
            context.log.warning(f"funding_arbitrage: no predicted prints or universe for {start:%Y-%m-%d}")
            continue
        carry, missing = forecast_carry(warehouse, times, config.forecast_horizon, models)
        no_forecast |= missing
        table = best_arbitrage(predicted, universe, times, costs, liquidity, rule, carry)
        parts.append((table.rows, {"as_of": (start, end)}))
        excluded = {k: excluded[k] + v for k, v in table.excluded.items()}
    rows = warehouse.replace_partitions("funding_arbitrage", parts) if parts else 0
    written = pd.concat([frame for frame, _ in parts], ignore_index=True) if parts else pd.DataFrame()
    by_ranking = written["ranking"].value_counts().to_dict() if len(written) else {}
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "rows_by_ranking": dg.MetadataValue.json({str(k): int(v) for k, v in by_ranking.items()}),
            "markets_excluded": dg.MetadataValue.json(excluded),
            "weeks_without_forecast": dg.MetadataValue.json(no_forecast),
            **latest_pairs(written, config.holding_days),
        }
    )


def latest_pairs(rows: pd.DataFrame, holding_days: float) -> dict[str, dg.MetadataValue]:
    """The last decision's predicted-rate pairs, best net APR first: a table and a plot."""
    predicted = rows.loc[rows["ranking"] == PREDICTED] if len(rows) else rows
    if predicted.empty:
        return {}
    last = predicted.loc[predicted["as_of"] == predicted["as_of"].max()]
    last = last.sort_values("net_apr", ascending=False).head(TABLE_ROWS)
    columns = ["base", "long_venue", "long_symbol", "short_venue", "short_symbol", "spread_8h", "gross_apr", "net_apr"]
    title = f"best pairs at {last['as_of'].max():%Y-%m-%d %H:%M} UTC (predicted rates; fees over {holding_days:g} days)"
    return {
        "best_pairs": dg.MetadataValue.md(markdown_table(last[columns].set_index("base"), "{:.5f}")),
        "best_pairs_plot": dg.MetadataValue.md(markdown_image(arbitrage_spreads(last, title), "best pairs")),
    }
