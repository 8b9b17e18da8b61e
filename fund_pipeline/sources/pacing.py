"""Client-side timing of REST requests: pacing by a venue's documented limits (its adapter's RateLimit data),
and the venue's own clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

from fund_pipeline.venues.adapter import RateLimit


class Pacer:
    """Spaces one venue's requests so no RateLimit of its adapter is exceeded, across threads.

    Each limit admits one request every `window_s * weight / limit` seconds (times `scale`, for an
    emulator whose windows are compressed the same way); a call waits for every limit that binds it.
    """

    def __init__(self, limits: tuple[RateLimit, ...], scale: float = 1.0) -> None:
        self._limits = limits
        self._gap_s = {limit.name: limit.window_s * scale * limit.weight / limit.limit for limit in limits}
        self._next = {limit.name: 0.0 for limit in limits}
        self._lock = threading.Lock()

    def wait(self, method: str) -> None:
        names = [limit.name for limit in self._limits if limit.covers(method)]
        if not names:
            return
        with self._lock:
            now = time.monotonic()
            slot = max([now, *(self._next[n] for n in names)])
            for n in names:
                self._next[n] = slot + self._gap_s[n]
        if slot > now:
            time.sleep(slot - now)


class StatedClock(NamedTuple):
    asked_at: float  # local monotonic seconds when the venue was asked
    offset: pd.Timedelta  # the venue's time minus the local wall clock


class VenueClocks:
    """Each venue's clock as its REST API states it: asked once, then advanced by the local clock, and asked
    again every `REFRESH_S` (an emulator may run its clock fast)."""

    REFRESH_S = 60.0

    def __init__(self, server_time: Callable[[str], pd.Timestamp]) -> None:
        self._server_time = server_time
        self._stated: dict[str, StatedClock] = {}

    def __call__(self, venue: str) -> pd.Timestamp:
        stated = self._stated.get(venue)
        if stated is None or time.monotonic() - stated.asked_at > self.REFRESH_S:
            venue_time = self._server_time(venue)
            stated = self._stated[venue] = StatedClock(time.monotonic(), venue_time - pd.Timestamp.now(tz="UTC"))
        return pd.Timestamp.now(tz="UTC") + stated.offset
