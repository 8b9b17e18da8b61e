"""The list of venue adapters: the one place that maps a venue's name to its adapter."""

from __future__ import annotations

from fund_pipeline.venues.adapter import VenueFacts

# Venues of the simulated market, the emulator and the ccxt connectors.
SIM_VENUES = ("binance", "bybit", "okx", "hyperliquid", "deribit")
# Venues present only in the real public sample (file import).
FILE_ONLY_VENUES = ("dydx", "gate", "htx", "kucoin", "mexc")
ALL_VENUES = SIM_VENUES + FILE_ONLY_VENUES

FACTS: dict[str, VenueFacts] = {
    "binance": VenueFacts("binance"),
    "bybit": VenueFacts("bybit"),
    "okx": VenueFacts("okx"),
    "hyperliquid": VenueFacts("hyperliquid", default_interval_h=1.0, quote="USDC"),
    "deribit": VenueFacts("deribit", quote="USDC"),
    "dydx": VenueFacts("dydx", default_interval_h=1.0, quote="USD"),
    "gate": VenueFacts("gate"),
    "htx": VenueFacts("htx"),
    "kucoin": VenueFacts("kucoin", settlement_phase_h=4.0),
    "mexc": VenueFacts("mexc"),
}


class UnknownVenueError(ValueError):
    """A venue or symbol was asked of a source that does not serve it."""


def facts(venue: str) -> VenueFacts:
    try:
        return FACTS[venue]
    except KeyError:
        raise UnknownVenueError(f"unknown venue {venue!r}; known venues are {list(FACTS)}") from None


def settlement_phase_h() -> dict[str, float]:
    """Venue → first daily settlement hour, for the venues whose grid does not start at midnight."""
    return {name: f.settlement_phase_h for name, f in FACTS.items() if f.settlement_phase_h}
