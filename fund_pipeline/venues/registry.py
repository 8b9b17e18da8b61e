"""The list of venue adapters: the one place that maps a venue's name to its adapter.

Adding a venue means writing its adapter module and adding it to ADAPTERS below.
"""

from __future__ import annotations

from fund_pipeline.venues import binance, bybit, deribit, dydx, gate, htx, hyperliquid, kucoin, mexc, okx
from fund_pipeline.venues.adapter import VenueAdapter, VenueFacts

ADAPTERS: dict[str, VenueAdapter] = {
    a.name: a
    for a in (
        binance.ADAPTER,
        bybit.ADAPTER,
        okx.ADAPTER,
        hyperliquid.ADAPTER,
        deribit.ADAPTER,
        dydx.ADAPTER,
        gate.ADAPTER,
        htx.ADAPTER,
        kucoin.ADAPTER,
        mexc.ADAPTER,
    )
}

# Venues of the simulated market, the emulator and the ccxt connectors: those with a REST mapping.
SIM_VENUES = tuple(name for name, a in ADAPTERS.items() if a.rest is not None)
# Venues present only in the real public sample (file import).
FILE_ONLY_VENUES = tuple(name for name, a in ADAPTERS.items() if a.rest is None)
ALL_VENUES = SIM_VENUES + FILE_ONLY_VENUES
# Venues whose public funding stream the collector listens to.
WS_VENUES = tuple(name for name, a in ADAPTERS.items() if a.stream is not None)

FACTS: dict[str, VenueFacts] = {name: a.facts for name, a in ADAPTERS.items()}


class UnknownVenueError(ValueError):
    """A venue or symbol was asked of a source that does not serve it."""


def adapter(venue: str) -> VenueAdapter:
    try:
        return ADAPTERS[venue]
    except KeyError:
        raise UnknownVenueError(f"unknown venue {venue!r}; known venues are {list(ADAPTERS)}") from None


def facts(venue: str) -> VenueFacts:
    return adapter(venue).facts


def settlement_phase_h() -> dict[str, float]:
    """Venue → first daily settlement hour, for the venues whose grid does not start at midnight."""
    return {name: f.settlement_phase_h for name, f in FACTS.items() if f.settlement_phase_h}
