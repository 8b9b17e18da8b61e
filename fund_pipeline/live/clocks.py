"""One clock per venue: the venue's time as its own messages state it, for its prints and its REST "now".

A venue's clock is the local clock plus an offset learned from the event times of its stream
messages (the lower median of the last few offsets, so one mis-stamped message does not move
it). Venues served by one emulator share one clock (its clock may run fast); a venue whose
messages carry no time (Hyperliquid) reads the shared clock, or the local one on the real venues,
which keep real time. When the caller gives the venues' time (`fixed`, a test's emulator clock),
that is every venue's clock. Received-at times are always the local clock's, or `fixed`'s.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import pandas as pd

OFFSETS_KEPT = 31


class VenueClock:
    """A venue's current time in int ns UTC."""

    def __init__(self, fixed: Callable[[], pd.Timestamp] | None = None) -> None:
        self._fixed = fixed
        self._offsets: deque[int] = deque(maxlen=OFFSETS_KEPT)
        self.offset_ns = 0

    def local_ns(self) -> int:
        """The collector's own time: what received-at carries."""
        return time.time_ns() if self._fixed is None else self._fixed().value

    def now_ns(self) -> int:
        """The venue's time now."""
        return self.local_ns() + (0 if self._fixed is not None else self.offset_ns)

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self.now_ns(), tz="UTC")

    @property
    def observed(self) -> bool:
        """Whether the clock is set: given, or learned from at least one stated time."""
        return self._fixed is not None or bool(self._offsets)

    def observe(self, venue_ts_ns: int, local_ns: int) -> None:
        """A message stamped `venue_ts_ns` by the venue arrived at `local_ns`."""
        if self._fixed is not None:
            return
        self._offsets.append(venue_ts_ns - local_ns)
        ordered = sorted(self._offsets)
        self.offset_ns = ordered[(len(ordered) - 1) // 2]


def venue_clocks(
    venues: list[str], shared: bool, fixed: Callable[[], pd.Timestamp] | None = None
) -> dict[str, VenueClock]:
    """A clock per venue; one clock for all when the venues share a server (an emulator)."""
    if shared or fixed is not None:
        one = VenueClock(fixed)
        return dict.fromkeys(venues, one)
    return {venue: VenueClock() for venue in venues}
