"""Client-side pacing of REST requests by a venue's documented limits (its adapter's RateLimit data)."""

from __future__ import annotations

import threading
import time

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
