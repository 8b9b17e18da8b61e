"""One clock per venue: the venue's time as its own messages state it, for its prints and its REST "now".

A venue's clock is the local clock plus an offset learned from the event times of its stream
messages: the lower median of the last few accepted offsets, so one mis-stamped message does not
move it. The collector shows it only messages within its tolerance of the clock; a run of
messages all ahead of it by the same amount means the venue's clock moved (an emulator running
fast, a venue's clock correction), and the clock follows them. Venues served by one emulator share
one clock; a venue whose messages carry no time (Hyperliquid) reads the shared clock, or the local
one on the real venues, which keep real time. When the caller gives the venues' time (`fixed`, a
test's emulator clock) that is every venue's clock. Received-at times are the local clock's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import pandas as pd

OFFSETS_KEPT = 9
# Consecutive messages ahead of the clock, mutually consistent, after which the clock follows them.
RESYNC_AFTER = 5


class VenueClock:
    """A venue's current time in int ns UTC."""

    def __init__(self, fixed: Callable[[], pd.Timestamp] | None = None) -> None:
        self._fixed = fixed
        self._offsets: deque[int] = deque(maxlen=OFFSETS_KEPT)
        self._ahead: list[int] = []
        self.offset_ns = 0
        self.stream_observed = fixed is not None

    def local_ns(self) -> int:
        """The collector's own time: what received-at carries."""
        return time.time_ns() if self._fixed is None else self._fixed().value

    def now_ns(self) -> int:
        """The venue's time now."""
        return self.local_ns() + (0 if self._fixed is not None else self.offset_ns)

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self.now_ns(), tz="UTC")

    def sync(self, venue_ns: int, local_ns: int) -> None:
        """The venue's REST server time: the clock until its stream states one."""
        if self._fixed is None and not self.stream_observed:
            self.offset_ns = venue_ns - local_ns

    def observe(self, venue_ts_ns: int, local_ns: int) -> None:
        """An accepted message stamped `venue_ts_ns` by the venue arrived at `local_ns`."""
        self.stream_observed = True
        self._ahead.clear()
        if self._fixed is not None:
            return
        self._offsets.append(venue_ts_ns - local_ns)
        ordered = sorted(self._offsets)
        self.offset_ns = ordered[(len(ordered) - 1) // 2]

    def ahead(self, venue_ts_ns: int, local_ns: int, tolerance_ns: int) -> bool:
        """A message ahead of the clock by more than the tolerance; True when a consistent run re-set the clock."""
        if self._fixed is not None:
            return False
        self._ahead.append(venue_ts_ns - local_ns)
        if len(self._ahead) < RESYNC_AFTER or max(self._ahead) - min(self._ahead) > tolerance_ns:
            self._ahead = self._ahead[-RESYNC_AFTER:]
            return False
        run, self._ahead = self._ahead, []
        self._offsets.clear()
        self._offsets.extend(run)
        self.offset_ns = sorted(run)[(len(run) - 1) // 2]
        return True


def venue_clocks(
    venues: list[str], shared: bool, fixed: Callable[[], pd.Timestamp] | None = None
) -> dict[str, VenueClock]:
    """A clock per venue; one clock for all when the venues share a server (an emulator)."""
    if shared or fixed is not None:
        one = VenueClock(fixed)
        return dict.fromkeys(venues, one)
    return {venue: VenueClock() for venue in venues}
