"""The one interface every market data source implements.

A source answers for one venue over a half-open UTC time range [start, end) and returns
frames in the schemas of `fund_pipeline.domain.prints`. Sources never touch the warehouse.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

# Venues of the simulated market, the emulator and the ccxt connectors.
SIM_VENUES = ("binance", "bybit", "okx", "hyperliquid", "deribit")
# Venues present only in the real public sample (file import).
FILE_ONLY_VENUES = ("dydx", "gate", "htx", "kucoin", "mexc")
ALL_VENUES = SIM_VENUES + FILE_ONLY_VENUES


class UnknownVenueError(ValueError):
    """A venue or symbol was asked of a source that does not serve it."""


class MarketSource(Protocol):
    name: str

    def venues(self) -> tuple[str, ...]:
        """Venues this source serves."""

    def markets(self, venue: str, day: pd.Timestamp) -> pd.DataFrame:
        """Perp markets listed on `venue` on `day`, MARKET_COLUMNS, unfiltered."""

    def funding_prints(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Settled prints with funding_time in [start, end), PRINT_COLUMNS."""

    def bars(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Hourly bars with ts (bar open) in [start, end), BAR_COLUMNS."""


def check_venue(source: MarketSource, venue: str) -> None:
    if venue not in source.venues():
        raise UnknownVenueError(
            f"venue {venue!r} is not served by the {source.name!r} source; it serves {list(source.venues())}"
        )
