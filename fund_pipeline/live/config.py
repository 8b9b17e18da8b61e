"""The collector's settings: timings, per-venue stream behaviour (from the adapters), backoff and status.

Per-venue values default to what each venue's adapter states (silence limit from its push
cadence, app ping, connection age limit, streams per connection); tests shrink them to run fast.
A single number given for a per-venue setting applies to every venue.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from fund_pipeline.venues.adapter import StreamSpec
from fund_pipeline.venues.registry import WS_VENUES, adapter


def _streams() -> dict[str, StreamSpec]:
    out = {}
    for venue in WS_VENUES:
        spec = adapter(venue).stream
        if spec is not None:
            out[venue] = spec
    return out


def _silence() -> dict[str, float]:
    return {v: s.silence_s for v, s in _streams().items()}


def _pings() -> dict[str, tuple[str, float]]:
    return {v: s.app_ping for v, s in _streams().items() if s.app_ping is not None}


def _ages() -> dict[str, float]:
    return {v: s.max_connection_age_s for v, s in _streams().items() if math.isfinite(s.max_connection_age_s)}


def _per_connection() -> dict[str, int]:
    return {v: s.streams_per_connection for v, s in _streams().items()}


def _liquidation_venues() -> tuple[str, ...]:
    return tuple(v for v in WS_VENUES if adapter(v).liquidation_channel is not None)


@dataclass
class CollectorConfig:
    """Timings in seconds; the defaults suit the real venues, tests shrink them to run fast."""

    flush_seconds: float = 1.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    # A connection that delivered data resets the backoff once it has lived this long, or twice the
    # delay that preceded it plus a second when that is shorter: so connections dropped every few
    # seconds reconnect at once, while ones that die right after their first frame still back off.
    stable_after_s: float = 10.0
    silence_s: float | dict[str, float] = field(default_factory=_silence)
    open_timeout_s: float = 10.0
    gap_fill_timeout_s: float = 15.0
    seed_timeout_s: float = 5.0
    seed_prints: int = 7
    max_age_s: dict[str, float] = field(default_factory=_ages)
    app_pings: dict[str, tuple[str, float]] = field(default_factory=_pings)
    streams_per_connection: dict[str, int] = field(default_factory=_per_connection)
    all_market: bool = False  # one whole-market subscription where the venue has one (Binance !markPrice@arr)
    # Also stream the bases' coin-margined perps (binance COIN-M, bybit inverse, okx -USD-SWAP), on their own routes.
    inverse: bool = False
    # Venues whose liquidation channel is subscribed on the funding connections (every venue that has one; () none).
    liquidation_venues: tuple[str, ...] = field(default_factory=_liquidation_venues)
    status_every_s: float = 5.0
    resubscribe_attempts: int = 3  # per connection, for subscriptions the venue refused
    # A print whose venue time is further ahead of the venue's clock than this is quarantined.
    future_tolerance_s: float = 120.0

    def silence_for(self, venue: str) -> float:
        if isinstance(self.silence_s, dict):
            return self.silence_s.get(venue, _silence().get(venue, 30.0))
        return self.silence_s

    def healthy_after_s(self, last_delay_s: float) -> float:
        return min(self.stable_after_s, 2 * last_delay_s + 1.0)


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    ceiling = min(max_s, base_s * (2**attempt))
    return ceiling / 2 + rng.random() * ceiling / 2
