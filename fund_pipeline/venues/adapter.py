"""What every venue adapter states about its venue, as data.

An adapter (`fund_pipeline.venues.<venue>`) holds everything specific to one venue: its settlement
grid and default intervals, its funding formula's constants, its symbols, its REST mapping onto
ccxt, its WebSocket streams and their parsing, and the encoders the emulator speaks it with.
Sources, the live collector and the emulator read these facts; none of them names a venue.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VenueFacts:
    """Facts every adapter states, including the venues known only from files."""

    name: str
    # Hour (UTC) of the first daily settlement: KuCoin settles 04/12/20, most venues 00/08/16.
    settlement_phase_h: float = 0.0
    # Interval of a symbol the venue lists without an interval of its own.
    default_interval_h: float = 8.0
    # The interest component of the venue's formula per 8h (0.01 %), the mass point of funding.
    interest_rate_8h: float = 0.0001
    # |premium-derived adjustment| bound of the formula, per 8h (±0.05 %).
    clamp_8h: float = 0.0005
    # Quote currency of its linear perps.
    quote: str = "USDT"
