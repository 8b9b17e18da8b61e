"""The tradable universe: which listed perp markets are liquid enough to trade or hedge with."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fund_pipeline.domain.prints import require_columns

LIQUIDITY_COLUMNS = ["volume_usd_24h", "open_interest_usd", "max_leverage"]


@dataclass(frozen=True)
class LiquidityFilter:
    """Floors a market must reach. A figure the source does not publish (NaN) passes and is counted:
    dropping every market of a venue without open-interest data would empty its universe silently."""

    min_volume_usd_24h: float = 2_000_000.0
    min_open_interest_usd: float = 1_000_000.0
    min_max_leverage: float = 5.0

    def passes(self, markets: pd.DataFrame) -> pd.Series:
        """True for each market at or above every floor it has a figure for."""
        require_columns(markets, LIQUIDITY_COLUMNS, "markets")

        def at_least(col: str, floor: float) -> pd.Series:
            return markets[col].isna() | (markets[col] >= floor)

        return (
            at_least("volume_usd_24h", self.min_volume_usd_24h)
            & at_least("open_interest_usd", self.min_open_interest_usd)
            & at_least("max_leverage", self.min_max_leverage)
        )


def without_liquidity_figures(markets: pd.DataFrame) -> int:
    """Markets kept without a volume or open-interest figure to judge them by."""
    return int(markets[["volume_usd_24h", "open_interest_usd"]].isna().any(axis=1).sum())
