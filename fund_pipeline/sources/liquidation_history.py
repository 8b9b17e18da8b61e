"""Liquidation history a market source can give, besides what the live collector lands.

The simulated market has its liquidations (sources/sim_liquidations) for any range; the ccxt source
reads the REST history where a venue publishes one (OKX `public/liquidation-orders`, about a week deep;
Binance retired its `allForceOrders`, Bybit has none); the files source has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from fund_pipeline.domain.liquidations import LIQUIDATION_COLUMNS, liquidations_frame, normalise_liquidations
from fund_pipeline.domain.time import NS_PER_MS, utc_timestamp
from fund_pipeline.venues.adapter import ParseContext
from fund_pipeline.venues.registry import adapter


def contract_sizes(call: Callable[..., Any], symbols: list[str]) -> dict[str, float]:
    """ccxt's `contractSize` of each listed symbol (where it states one): a stream counting contracts needs it."""
    markets = call("load_markets")
    return {s: float(size) for s in symbols if (size := (markets.get(s) or {}).get("contractSize"))}


def source_liquidations(source: Any, venue: str, start, end, bases: list[str] | None = None) -> pd.DataFrame:
    """Liquidations on `venue` with ts in [start, end) from `source`, LIQUIDATION_COLUMNS; empty when it has none.

    Over REST, the perps the source serves (coin-margined too when its `inverse` is on) of `bases` (None: all)."""
    from fund_pipeline.sources.ccxt import CcxtSource
    from fund_pipeline.sources.sim_liquidations import LIQUIDATION_VENUES, simulated_liquidations
    from fund_pipeline.sources.simulated import SimulatedMarket

    if isinstance(source, SimulatedMarket):
        if venue not in LIQUIDATION_VENUES or venue not in source.venues():
            return _empty()
        return simulated_liquidations(source, venue, start, end)
    if isinstance(source, CcxtSource) and adapter(venue).liquidation_history_path is not None:
        symbols = [s for s in source.perp_symbols(venue) if bases is None or s.partition("/")[0] in bases]
        return rest_liquidations(source.caller(venue), venue, symbols, start, end)
    return _empty()


def rest_liquidations(call: Callable[..., Any], venue: str, symbols: list[str], start, end) -> pd.DataFrame:
    """The venue's REST history of liquidations of `symbols` in [start, end), by its adapter's rule."""
    venue_adapter = adapter(venue)
    ctx = ParseContext(venue, wanted=set(symbols))
    ctx.contract_sizes.update(contract_sizes(call, symbols))
    start_ms, end_ms = (utc_timestamp(t).value // NS_PER_MS for t in (start, end))
    rows = [liq for symbol in symbols for liq in venue_adapter.liquidation_history(call, symbol, start_ms, end_ms, ctx)]
    return liquidations_frame(rows)


def _empty() -> pd.DataFrame:
    return normalise_liquidations(pd.DataFrame(columns=LIQUIDATION_COLUMNS))
