"""The one interface every market data source implements.

A source answers for one venue over a half-open UTC time range [start, end) and returns
frames in the schemas of `fund_pipeline.domain.prints`. Sources never touch the warehouse.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd

from fund_pipeline.domain.predicted import FundingFormula
from fund_pipeline.venues.registry import UnknownVenueError

__all__ = [
    "HistoryDepthError",
    "MarketSource",
    "PremiumHistorySource",
    "UnknownVenueError",
    "VenueUnavailableError",
    "check_venue",
]


class VenueUnavailableError(RuntimeError):
    """A venue kept failing after every retry; names the venue, the call and the last error (status and body)."""


class HistoryDepthError(ValueError):
    """A backfill asked an endpoint for older data than the venue keeps; names venue, endpoint and depth."""


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


@runtime_checkable
class PremiumHistorySource(MarketSource, Protocol):
    """A source that also serves premium-index history, for the predicted-rate reconstruction."""

    def premium_samples(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Premium samples with ts (when known) in [start, end): `domain.predicted.SAMPLE_COLUMNS`,
        plus mark_price and index_price where the venue gives them."""

    def funding_formulas(self, venue: str, symbols: list[str]) -> dict[str, FundingFormula]:
        """The formula each symbol settles with on this source's market."""


def check_venue(source: MarketSource, venue: str) -> None:
    if venue not in source.venues():
        raise UnknownVenueError(
            f"venue {venue!r} is not served by the {source.name!r} source; it serves {list(source.venues())}"
        )
