"""Keeping one venue connection alive: connect and subscribe, ping, watchdog, rotation, backoff, refused subscriptions.

`LinkReader` is the collector's connection half: it owns the reconnect loop of one group of a
venue's symbols and hands every received frame to `on_frame` (the collector's parsing and
ingest). Every connect, disconnect (with its reason) and refused subscription is logged when it
happens, not only in the final counters.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from fund_pipeline.live.config import CollectorConfig, backoff_delay
from fund_pipeline.venues.registry import adapter
from fund_pipeline.venues.streams import StreamParser, subscribe_messages

log = logging.getLogger("fund_pipeline.live.collector")
DROPS = (OSError, TimeoutError, InvalidHandshake, ConnectionClosed)


@dataclass
class Link:
    """One open connection of a venue's stream: its parser, ping timer, pending receive and subscriptions."""

    ws: Any
    parser: StreamParser
    opened: float
    next_ping: float
    symbols: list[str] = field(default_factory=list)
    first_data: float | None = None
    receiving: asyncio.Future[Any] | None = None
    resubscribes: int = 0
    reported_failures: int = 0
    resubscribe_at: float = math.inf

    def recv(self) -> asyncio.Future[Any]:
        """The pending receive, kept across waits so no frame is dropped by a timeout."""
        if self.receiving is None:
            self.receiving = asyncio.ensure_future(self.ws.recv())
        return self.receiving

    def take(self) -> Any:
        """The received frame (raises what the receive raised) and clear the pending receive."""
        done, self.receiving = self.receiving, None
        assert done is not None
        return done.result()

    def cancel_receive(self) -> None:
        if self.receiving is not None:
            self.receiving.cancel()
            self.receiving = None


class LinkReader:
    """The reconnect loop of the collector (see Collector for the attributes it shares)."""

    config: CollectorConfig
    stats: Counter[str]
    intervals: dict[str, dict[str, float]]
    contract_sizes: dict[str, dict[str, float]]
    _stop: asyncio.Event
    _rng: random.Random
    _connected: Counter[str]

    def ws_url(self, venue: str, symbols: list[str]) -> str:
        """The stream URL of a connection for `symbols` (a venue may stream some on another route or host)."""
        raise NotImplementedError

    def whole_market(self, venue: str, symbols: list[str]) -> bool:
        """Whether the connection for `symbols` takes the venue's whole-market subscription."""
        return self.config.all_market

    async def on_frame(self, venue: str, link: Link, raw: Any) -> bool:
        raise NotImplementedError

    async def gap_fill(self, venue: str, symbols: list[str]) -> None:
        raise NotImplementedError

    async def _sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def keep_connected(self, venue: str, symbols: list[str]) -> None:
        """Keep one connection for `symbols` of `venue` until the collector stops."""
        attempt = 0
        delay = 0.0
        connected_before = False
        handed_over: Link | None = None
        while not self._stop.is_set():
            healthy = False
            reason = "error"
            link = None
            try:
                if handed_over is not None:
                    link, handed_over = handed_over, None
                else:
                    link = await self._connect(venue, symbols)
                    if connected_before:
                        self.stats[f"reconnects:{venue}"] += 1
                        await self.gap_fill(venue, symbols)
                    connected_before = True
                self._connected[venue] += 1
                try:
                    reason, healthy, handed_over = await self._read(venue, link, delay)
                finally:
                    self._connected[venue] -= 1
            except InvalidStatus as refused:
                status = refused.response.status_code
                reason = f"http_{status}"
                retry_after = refused.response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    await self._sleep(float(retry_after))
            except DROPS as dropped:
                reason = type(dropped).__name__
            finally:
                if link is not None:
                    await link.ws.close()
            self.stats[f"disconnects:{venue}:{reason}"] += 1
            if self._stop.is_set():
                if handed_over is not None:
                    await handed_over.ws.close()
                break
            if reason == "rotate" or healthy:
                attempt = 0
            if reason == "rotate":
                log.info("%s: connection rotated before the venue's age limit", venue)
                continue
            delay = backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_max_s, self._rng)
            log.warning("%s: disconnected (%s); reconnecting in %.2f s (attempt %d)", venue, reason, delay, attempt + 1)
            await self._sleep(delay)
            attempt += 1

    def subscriptions(self, venue: str, symbols: list[str]) -> list[str]:
        """The frames subscribing one connection: the funding stream of `symbols`, and their liquidations if asked."""
        frames = subscribe_messages(venue, symbols, self.whole_market(venue, symbols))
        if venue in self.config.liquidation_venues:
            frames += adapter(venue).liquidation_subscribe_messages(symbols)
        return frames

    async def _connect(self, venue: str, symbols: list[str]) -> Link:
        """A new connection to the venue's stream, already subscribed, with its own parser."""
        ws = await websockets.connect(
            self.ws_url(venue, symbols), open_timeout=self.config.open_timeout_s, ping_interval=None, close_timeout=1,
            max_size=2**24,
        )  # fmt: skip
        self.stats[f"connects:{venue}"] += 1
        try:
            for frame in self.subscriptions(venue, symbols):
                await ws.send(frame)
        except BaseException:
            await ws.close()
            raise
        now = time.monotonic()
        ping_every = self.config.app_pings.get(venue, (None, math.inf))[1]
        parser = StreamParser(venue, self.intervals[venue], wanted=set(symbols))
        parser.ctx.contract_sizes = self.contract_sizes[venue]
        log.info("%s: connected, %d symbol(s) subscribed", venue, len(symbols))
        return Link(ws, parser, opened=now, next_ping=now + ping_every, symbols=list(symbols))

    async def _check_subscriptions(self, venue: str, link: Link) -> None:
        """Report refused subscriptions at once; resubscribe the link's symbols, a few times at most."""
        failures = link.parser.ctx.failed_subscriptions
        if len(failures) <= link.reported_failures:
            return
        for failure in failures[link.reported_failures :]:
            self.stats[f"subscribe_failed:{venue}"] += 1
            log.warning("%s: subscription refused: %s", venue, failure)
        link.reported_failures = len(failures)
        if link.resubscribes < self.config.resubscribe_attempts:
            link.resubscribes += 1
            link.resubscribe_at = time.monotonic() + self.config.backoff_base_s * 2**link.resubscribes
        else:
            log.error("%s: subscription still refused after %d retries; not retried again", venue, link.resubscribes)

    async def _resubscribe(self, venue: str, link: Link) -> None:
        link.resubscribe_at = math.inf
        for frame in self.subscriptions(venue, link.symbols):
            await link.ws.send(frame)
        self.stats[f"resubscribes:{venue}"] += 1
        log.info("%s: resubscribed %d symbol(s) after a refusal", venue, len(link.symbols))

    async def _read(self, venue: str, link: Link, last_delay: float) -> tuple[str, bool, Link | None]:
        """Read until stop, silence, drop or rotation; returns (reason, healthy by the backoff rule, successor).

        Rotation is make-before-break: at the age limit a successor is connected and subscribed
        while `link` is still read, and it takes over (returned as successor, `link` to be
        closed by the caller) once it delivers data or `link` drops, so no print is lost.
        """
        cfg = self.config
        silence_s = cfg.silence_for(venue)
        stable_s = cfg.healthy_after_s(last_delay)
        last_data = time.monotonic()
        rotate_at = link.opened + cfg.max_age_s.get(venue, math.inf)
        ping_frame = cfg.app_pings.get(venue, (None, math.inf))[0]
        successor: Link | None = None
        handed: Link | None = None
        stop_wait = asyncio.ensure_future(self._stop.wait())

        def lived() -> bool:
            return link.first_data is not None and time.monotonic() - link.opened >= stable_s

        try:
            while True:
                now = time.monotonic()
                healthy = lived()
                if now - last_data >= silence_s:
                    self.stats[f"watchdog:{venue}"] += 1
                    return "silent", healthy, None
                if successor is None and now >= rotate_at:
                    try:
                        successor = await self._connect(venue, link.symbols)
                    except DROPS as failed:
                        self.stats[f"rotation_failed:{venue}:{type(failed).__name__}"] += 1
                        rotate_at = now + cfg.backoff_max_s
                    continue
                if successor is not None and successor.first_data is None and now - successor.opened >= silence_s:
                    self.stats[f"rotation_failed:{venue}:silent"] += 1
                    successor.cancel_receive()
                    await successor.ws.close()
                    successor, rotate_at = None, now + cfg.backoff_max_s
                    continue
                links = [link] if successor is None else [link, successor]
                for each in links:
                    if now >= each.resubscribe_at:
                        await self._resubscribe(venue, each)
                    if ping_frame is not None and now >= each.next_ping:
                        await each.ws.send(ping_frame)
                        each.next_ping = now + cfg.app_pings[venue][1]
                deadline = min(
                    last_data + silence_s, *(each.next_ping for each in links), *(e.resubscribe_at for e in links),
                    rotate_at if successor is None else successor.opened + silence_s,
                )  # fmt: skip
                done, _ = await asyncio.wait(
                    {each.recv() for each in links} | {stop_wait}, timeout=max(0.0, deadline - now),
                    return_when=asyncio.FIRST_COMPLETED,
                )  # fmt: skip
                if stop_wait in done:
                    return "stop", healthy, None
                for each in links:
                    if each.receiving not in done:
                        continue
                    try:
                        raw = each.take()
                    except ConnectionClosed:
                        if each is successor:
                            self.stats[f"rotation_failed:{venue}:closed"] += 1
                            successor, rotate_at = None, now + cfg.backoff_max_s
                            continue
                        if successor is not None:
                            self.stats[f"rotations:{venue}"] += 1
                            handed = successor
                            return "rotate", lived(), handed
                        return "closed", lived(), None
                    if await self.on_frame(venue, each, raw):
                        last_data = time.monotonic()
                    await self._check_subscriptions(venue, each)
                if successor is not None and successor.first_data is not None:
                    self.stats[f"rotations:{venue}"] += 1
                    handed = successor
                    return "rotate", healthy, handed
        finally:
            stop_wait.cancel()
            link.cancel_receive()
            if successor is not None:
                successor.cancel_receive()
                if successor is not handed:
                    await successor.ws.close()
