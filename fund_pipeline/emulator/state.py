"""What every emulator route shares: the simulated market, the emulator's clock, the faults to inject and the
request counters (the server builds it; the REST and WebSocket handlers read it)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from fund_pipeline.domain.prints import to_utc
from fund_pipeline.emulator.limits import RateLimits
from fund_pipeline.venues.registry import UnknownVenueError

if TYPE_CHECKING:
    from fund_pipeline.sources.simulated import SimulatedMarket


@dataclass
class EmulatorClock:
    """Emulator time: `start` plus `speed` times the wall time elapsed since creation."""

    start: pd.Timestamp
    speed: float = 1.0
    _wall_start: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        self.start = pd.Timestamp(self.start)
        self.start = self.start.tz_localize("UTC") if self.start.tzinfo is None else self.start.tz_convert("UTC")
        if not self.speed > 0:
            raise ValueError(f"EmulatorClock: speed must be > 0, got {self.speed!r}")

    def now(self) -> pd.Timestamp:
        elapsed_s = (time.monotonic() - self._wall_start) * self.speed
        return self.start + pd.Timedelta(seconds=elapsed_s)


@dataclass
class Faults:
    """Faults to inject; all off by default. Counts are per venue and per kind of request."""

    # REST
    http_429_first_n: int = 0
    http_418_first_n: int = 0
    http_5xx_every_n: int = 0
    http_drop_every_n: int = 0  # the connection is closed without an answer
    retry_after_s: int = 1  # the Retry-After of 429 and 418 answers
    venue_down: frozenset[str] = frozenset()
    # The venues' own REST rate limits (adapters' RateLimit), their windows multiplied by the scale.
    rate_limits: bool = False
    rate_limit_scale: float = 1.0
    # WebSocket
    drop_after_s: float | None = None
    silent_after_s: float | None = None
    ws_429_first_n: int = 0
    malformed_every_n: int = 0
    jump_windows_at: pd.Timestamp | None = None
    duplicate_every_n: int = 0
    late_every_n: int = 0
    refuse_subscribe: frozenset[str] = frozenset()  # bases whose stream subscriptions are refused

    def __post_init__(self) -> None:
        self.venue_down = frozenset(self.venue_down)
        self.refuse_subscribe = frozenset(self.refuse_subscribe)
        if self.jump_windows_at is not None:
            self.jump_windows_at = to_utc([self.jump_windows_at])[0]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"Faults.{f.name} must be >= 0, got {value!r}")


@dataclass
class EmulatorState:
    """Everything the route handlers share: the market, the clock, the faults, request counters."""

    market: SimulatedMarket
    clock: EmulatorClock
    faults: Faults
    venues: tuple[str, ...]
    bases: tuple[str, ...]
    counters: dict[str, int] = field(default_factory=dict)
    limits: RateLimits = field(default_factory=RateLimits)

    def bump(self, key: str) -> int:
        """Count one more event under `key` and return the new count (1 for the first)."""
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    def check_venue(self, venue: str) -> None:
        if venue not in self.venues:
            raise UnknownVenueError(f"emulator does not serve venue {venue!r}; it serves {list(self.venues)}")
