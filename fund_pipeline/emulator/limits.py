"""The venues' REST rate limits as the emulator enforces them, from the adapters' RateLimit data.

Per venue and limit, a sliding window of request weights (wall time, windows multiplied by
`scale` so a test can compress Binance's 5 minutes into seconds). Over a limit the venue answers
429 with Retry-After; a client that sends again before that Retry-After has passed is banned
(the venue's ban status, 418 on Binance) for twice the window, as the venues describe it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from fund_pipeline.venues.registry import adapter


class RateLimits:
    """Admission of REST requests by the venues' limits."""

    def __init__(self, scale: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not scale > 0:
            raise ValueError(f"rate limits: scale must be > 0, got {scale!r}")
        self.scale = scale
        self._clock = clock
        self._windows: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        self._retry_until: dict[str, float] = {}
        self._banned_until: dict[str, float] = {}

    def admit(self, venue: str, path: str) -> tuple[int, float, str] | None:
        """None when the request may pass (and is counted), else (status, Retry-After seconds, message)."""
        spec = adapter(venue).rest
        if spec is None:
            return None
        now = self._clock()
        banned = self._banned_until.get(venue, 0.0)
        if now < banned:
            return 418, banned - now, f"{venue}: IP banned until the limit's window has passed"
        if now < self._retry_until.get(venue, 0.0):
            longest = max((r.window_s for r in spec.rate_limits), default=1.0) * self.scale
            self._banned_until[venue] = now + 2 * longest
            return 418, 2 * longest, f"{venue}: way too many requests after a 429; IP banned"
        binding = [r for r in spec.rate_limits if r.binds(path)]
        for limit in binding:
            window = self._windows.setdefault((venue, limit.name), deque())
            span = limit.window_s * self.scale
            while window and window[0][0] <= now - span:
                window.popleft()
            used = sum(w for _, w in window)
            if used + limit.weight > limit.limit:
                freed, wait = used, span
                for t, w in window:
                    freed -= w
                    if freed + limit.weight <= limit.limit:
                        wait = t + span - now
                        break
                self._retry_until[venue] = now + wait
                return 429, wait, f"{venue}: too many requests: {limit.name} allows {limit.limit:g} per {span:g} s"
        for limit in binding:
            self._windows[(venue, limit.name)].append((now, limit.weight))
        return None
