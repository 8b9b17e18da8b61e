"""The live collector: venue WebSocket streams → curve builders → landing segments.

One task per venue keeps a connection alive: exponential backoff with jitter between attempts
(also after a connection that opened and then dropped: only a connection that delivered data
for `stable_after_s` resets the backoff), the venue's application pings, a watchdog that
reconnects a stream silent for `silence_s`, make-before-break rotation before the venue's
connection age limit (the successor is subscribed and delivering before the old connection
closes), resubscription and a REST gap-fill of the settled prints missed while disconnected (fed
before the new connection's first frame, so they land and reach the builders in time order). A live
print that would skip whole funding windows also triggers a gap-fill of its symbol first: those
windows settled meanwhile, and their real prints beat interpolation. Frames that do not
parse are counted and kept in quarantine segments; nothing a venue sends can crash the loop.

A cold start seeds each builder with the last settled prints over REST, so the first live
message already gives a full curve. Prints, snapshots and quarantined frames are buffered and
flushed as one atomic segment set every `flush_seconds` (see landing.py): a `kill -9` loses at
most the last unflushed interval. The collector never opens the warehouse.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import random
import signal
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from fund_pipeline.domain.curve import NS_PER_HOUR, FundingCurveBuilder, SnapshotPolicy, snapshots_frame
from fund_pipeline.domain.prints import PRINT_COLUMNS
from fund_pipeline.live.landing import SegmentWriter, frame_table, prints_table, quarantine_table
from fund_pipeline.venues.streams import (
    APP_PINGS,
    MAX_CONNECTION_AGE_S,
    PUBLIC_WS_URLS,
    WS_VENUES,
    MalformedMessage,
    StreamParser,
    subscribe_messages,
    venue_symbol,
)

RAW_QUARANTINE_CHARS = 65_536


@dataclass
class CollectorConfig:
    """Timings in seconds; the defaults suit the real venues, tests shrink them to run fast."""

    flush_seconds: float = 1.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    stable_after_s: float = 10.0
    silence_s: float = 30.0
    open_timeout_s: float = 10.0
    gap_fill_timeout_s: float = 15.0
    seed_timeout_s: float = 5.0
    seed_prints: int = 7
    max_age_s: dict[str, float] = field(default_factory=lambda: dict(MAX_CONNECTION_AGE_S))
    app_pings: dict[str, tuple[str, float]] = field(default_factory=lambda: dict(APP_PINGS))
    binance_all_market: bool = False


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    ceiling = min(max_s, base_s * (2**attempt))
    return ceiling / 2 + rng.random() * ceiling / 2


@dataclass
class _Link:
    """One open connection of a venue's stream: its parser, ping timer and pending receive."""

    ws: object
    parser: StreamParser
    opened: float
    next_ping: float
    first_data: float | None = None
    receiving: asyncio.Future | None = None

    def recv(self) -> asyncio.Future:
        """The pending receive, kept across waits so no frame is dropped by a timeout."""
        if self.receiving is None:
            self.receiving = asyncio.ensure_future(self.ws.recv())
        return self.receiving

    def take(self):
        """The received frame (raises what the receive raised) and clear the pending receive."""
        done, self.receiving = self.receiving, None
        return done.result()

    def cancel_receive(self) -> None:
        if self.receiving is not None:
            self.receiving.cancel()
            self.receiving = None


class Collector:
    """Streams `venues` × `bases` into builders and landing segments until stopped."""

    def __init__(
        self,
        venues: list[str],
        bases: list[str],
        landing_dir: Path,
        *,
        api_base_url: str | None = None,
        policy: SnapshotPolicy | None = None,
        config: CollectorConfig | None = None,
        clock: Callable[[], pd.Timestamp] | None = None,
        rest_source=None,
        seed: int | None = None,
    ) -> None:
        """`clock` is the venues' time (the emulator's clock in tests); receive times use it."""
        unknown = [v for v in venues if v not in WS_VENUES]
        if unknown:
            raise ValueError(f"collector: no WebSocket stream for venue(s) {unknown}; supported {list(WS_VENUES)}")
        self.venues = list(venues)
        self.symbols = {v: [venue_symbol(v, b) for b in bases] for v in venues}
        self.landing_dir = Path(landing_dir)
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else None
        self.policy = policy or SnapshotPolicy()
        self.config = config or CollectorConfig()
        self.clock = clock
        self._rest = rest_source
        self._rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self.durable_lag_s: deque[float] = deque(maxlen=10_000)
        self.builders: dict[tuple[str, str], FundingCurveBuilder] = {}
        self.intervals: dict[str, dict[str, float]] = {v: {} for v in venues}
        self._last_settled: dict[tuple[str, str], int] = {}
        self._seed_rows: dict[tuple[str, str], list[tuple]] = {}
        self._windows: dict[tuple[str, str], int] = {}  # newest funding time fed to each builder
        self._prints: list[tuple] = []
        self._snapshots: list[tuple] = []
        self._quarantine: list[tuple] = []
        self._batch_started: float | None = None
        self._stop = asyncio.Event()

    # ------------------------------------------------------------ plumbing

    def now_ns(self) -> int:
        return time.time_ns() if self.clock is None else self.clock().value

    def ws_url(self, venue: str) -> str:
        if self.api_base_url is None:
            return PUBLIC_WS_URLS[venue]
        return self.api_base_url.replace("http", "ws", 1) + f"/{venue}/ws"

    def rest(self):
        if self._rest is None:
            from fund_pipeline.sources.ccxt import CcxtSource

            # Pace requests to the public venues' limits; the emulator answers 429 itself when pushed.
            self._rest = CcxtSource(
                venues=self.venues,
                symbols=self.symbols,
                api_base_url=self.api_base_url,
                now=self.clock,
                throttle=self.api_base_url is None,
            )
        return self._rest

    def stop(self) -> None:
        self._stop.set()

    def _builder(self, venue: str, symbol: str) -> FundingCurveBuilder:
        builder = self.builders.get((venue, symbol))
        if builder is None:
            builder = self.builders[(venue, symbol)] = FundingCurveBuilder(venue, symbol, self.policy)
        return builder

    def _ingest(self, prints: list[tuple]) -> None:
        """Feed the builders and buffer for landing, in one order (the replay's order)."""
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        self._prints.extend(prints)
        windows = self._windows
        for row in prints:
            key = (row[0], row[1])
            snapshot = self._builder(*key).update(row[4], row[7], row[8], row[5])
            if row[4] > windows.get(key, row[4] - 1):
                windows[key] = row[4]
            if snapshot is not None:
                self._snapshots.append(snapshot)
        self.stats["prints"] += len(prints)

    def _quarantine_frame(self, venue: str, received_ns: int, reason: str, raw) -> None:
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        self._quarantine.append((venue, received_ns, reason[:500], text[:RAW_QUARANTINE_CHARS]))
        self.stats[f"quarantined:{venue}"] += 1

    def _settled_rows(self, venue: str, frame: pd.DataFrame) -> list[tuple]:
        """REST settled prints as landing tuples, newer than what was already landed."""
        if frame.empty:
            return []
        received = self.now_ns()
        rows = []
        for rec in frame[PRINT_COLUMNS].itertuples(index=False):
            funding = rec.funding_time.value
            if funding <= self._last_settled.get((venue, rec.symbol), -1):
                continue
            self._last_settled[(venue, rec.symbol)] = funding
            self.intervals[venue][rec.symbol] = float(rec.interval_h)
            rows.append((
                venue, rec.symbol, rec.base, "settled", funding, rec.ts.value, received, float(rec.rate),
                float(rec.interval_h), float(rec.mark_price), float(rec.index_price), "rest",
            ))  # fmt: skip
        return rows

    # ------------------------------------------------------------ warm start and gap-fill

    async def warm_start(self, venue: str) -> None:
        """Seed the venue's builders with the last settled prints (REST): the first live message gives a full curve."""
        n = self.config.seed_prints

        async def seed(venue: str, symbol: str) -> None:
            try:
                frame = await asyncio.wait_for(
                    asyncio.to_thread(self.rest().last_settled, venue, symbol, n), self.config.seed_timeout_s
                )
            except Exception as failed:  # noqa: BLE001 - a venue's REST failure leaves that builder cold
                self.stats[f"seed_failed:{venue}"] += 1
                print(f"collector: warm start of {venue} {symbol} failed: {failed!r}", flush=True)
                return
            rows = self._settled_rows(venue, frame)
            if rows:
                self._seed(venue, symbol, rows)
                self.stats["seed_prints"] += len(rows)

        await asyncio.gather(*(seed(venue, s) for s in self.symbols[venue]))

    def _seed(self, venue: str, symbol: str, rows: list[tuple]) -> None:
        """Settled rows landed before a symbol's first live print all seed its builder (no snapshots).

        That is the replay's rule for landed prints: the settled rows before a stream's first
        live row are its seed, the rows after it are updates.
        """
        seed_rows = self._seed_rows.setdefault((venue, symbol), [])
        seed_rows.extend(rows)
        settled = pd.DataFrame(
            {
                "funding_time": pd.to_datetime([r[4] for r in seed_rows], utc=True),
                "ts": pd.to_datetime([r[5] for r in seed_rows], utc=True),
                "rate": [r[7] for r in seed_rows],
                "interval_h": [r[8] for r in seed_rows],
            }
        )
        self._builder(venue, symbol).seed(settled)
        self._windows[(venue, symbol)] = max(r[4] for r in seed_rows)
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        self._prints.extend(rows)

    async def gap_fill(self, venue: str, symbols: list[str] | None = None) -> None:
        """Settled prints since the last landed one (else since the builder's window), per symbol of `venue`."""
        for symbol in self.symbols[venue] if symbols is None else symbols:
            last = self._last_settled.get((venue, symbol), self._windows.get((venue, symbol)))
            if last is None:
                continue
            since = pd.Timestamp(last, tz="UTC")
            try:
                frame = await asyncio.wait_for(
                    asyncio.to_thread(self.rest().settled_since, venue, symbol, since), self.config.gap_fill_timeout_s
                )
            except Exception as failed:  # noqa: BLE001 - a failed gap-fill is counted, the stream goes on
                self.stats[f"gap_fill_failed:{venue}"] += 1
                print(f"collector: gap-fill of {venue} {symbol} failed: {failed!r}", flush=True)
                continue
            rows = self._settled_rows(venue, frame)
            if (venue, symbol) in self._seed_rows:
                self._seed(venue, symbol, rows)
            else:
                self._ingest(rows)
            self.stats[f"gap_fill_prints:{venue}"] += len(rows)

    # ------------------------------------------------------------ streams

    async def stream(self, venue: str) -> None:
        """Warm-start the venue, then keep its stream connected until the collector stops."""
        await self.warm_start(venue)
        attempt = 0
        connected_before = False
        handed_over: _Link | None = None
        while not self._stop.is_set():
            healthy = False
            reason = "error"
            link = None
            try:
                if handed_over is not None:
                    link, handed_over = handed_over, None
                else:
                    link = await self._connect(venue)
                    if connected_before:
                        await self.gap_fill(venue)
                    connected_before = True
                reason, healthy, handed_over = await self._read(venue, link)
            except InvalidStatus as refused:
                status = refused.response.status_code
                reason = f"http_{status}"
                retry_after = refused.response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    await self._sleep(float(retry_after))
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as dropped:
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
                continue
            await self._sleep(backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_max_s, self._rng))
            attempt += 1

    async def _connect(self, venue: str) -> _Link:
        """A new connection to the venue's stream, already subscribed, with its own parser."""
        ws = await websockets.connect(
            self.ws_url(venue), open_timeout=self.config.open_timeout_s, ping_interval=None, close_timeout=1,
            max_size=2**24,
        )  # fmt: skip
        self.stats[f"connects:{venue}"] += 1
        try:
            for frame in subscribe_messages(venue, self.symbols[venue], self.config.binance_all_market):
                await ws.send(frame)
        except BaseException:
            await ws.close()
            raise
        now = time.monotonic()
        ping_every = self.config.app_pings.get(venue, (None, math.inf))[1]
        return _Link(ws, StreamParser(venue, self.intervals[venue]), opened=now, next_ping=now + ping_every)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _read(self, venue: str, link: _Link) -> tuple[str, bool, _Link | None]:
        """Read until stop, silence, drop or rotation; returns (reason, delivered data long enough, successor).

        Rotation is make-before-break: at the age limit a successor is connected and subscribed
        while `link` is still read, and it takes over (returned as successor, `link` to be
        closed by the caller) once it delivers data or `link` drops, so no print is lost.
        """
        cfg = self.config
        last_data = time.monotonic()
        rotate_at = link.opened + cfg.max_age_s.get(venue, math.inf)
        ping_frame = cfg.app_pings.get(venue, (None, math.inf))[0]
        successor: _Link | None = None
        handed: _Link | None = None
        stop_wait = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                now = time.monotonic()
                healthy = link.first_data is not None and now - link.first_data >= cfg.stable_after_s
                if now - last_data >= cfg.silence_s:
                    self.stats[f"watchdog:{venue}"] += 1
                    return "silent", healthy, None
                if successor is None and now >= rotate_at:
                    try:
                        successor = await self._connect(venue)
                    except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as failed:
                        self.stats[f"rotation_failed:{venue}:{type(failed).__name__}"] += 1
                        rotate_at = now + cfg.backoff_max_s
                    continue
                if successor is not None and successor.first_data is None and now - successor.opened >= cfg.silence_s:
                    self.stats[f"rotation_failed:{venue}:silent"] += 1
                    successor.cancel_receive()
                    await successor.ws.close()
                    successor, rotate_at = None, now + cfg.backoff_max_s
                    continue
                links = [link] if successor is None else [link, successor]
                for each in links:
                    if ping_frame is not None and now >= each.next_ping:
                        await each.ws.send(ping_frame)
                        each.next_ping = now + cfg.app_pings[venue][1]
                deadline = min(
                    last_data + cfg.silence_s, *(each.next_ping for each in links),
                    rotate_at if successor is None else successor.opened + cfg.silence_s,
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
                            return "rotate", healthy, handed
                        return "closed", healthy, None
                    if await self._receive(venue, each, raw):
                        last_data = time.monotonic()
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

    async def _receive(self, venue: str, link: _Link, raw) -> bool:
        """Parse one frame and ingest its prints; True when it held data."""
        received = self.now_ns()
        self.stats[f"frames:{venue}"] += 1
        try:
            prints = link.parser.parse(raw, received)
        except MalformedMessage as bad:
            self._quarantine_frame(venue, received, str(bad), raw)
            return False
        if not prints:
            return False
        skipping = self._skipping_windows(prints)
        if skipping:
            await self.gap_fill(venue, skipping)
        self._ingest(prints)
        for row in prints:
            self._seed_rows.pop((row[0], row[1]), None)
        if link.first_data is None:
            link.first_data = time.monotonic()
        return True

    def _skipping_windows(self, prints: list[tuple]) -> list[str]:
        """Symbols whose print would make its builder skip (and so interpolate) funding windows.

        A missed window has usually settled by now (the stream stalled, or settled between the
        warm start and the first live message): its REST print is fetched instead of guessed.
        """
        found = []
        for row in prints:
            last = self._windows.get((row[0], row[1]))
            if last is not None and row[4] - last >= 1.5 * row[8] * NS_PER_HOUR and row[1] not in found:
                found.append(row[1])
        return found

    # ------------------------------------------------------------ landing

    def _take_batch(self) -> tuple[list, list, list, float | None]:
        batch = (self._prints, self._snapshots, self._quarantine, self._batch_started)
        self._prints, self._snapshots, self._quarantine, self._batch_started = [], [], [], None
        return batch

    def _write(self, writer: SegmentWriter, prints: list, snapshots: list, quarantine: list) -> int | None:
        tables = {
            "prints": prints_table(prints) if prints else None,
            "snapshots": frame_table(snapshots_frame(snapshots)) if snapshots else None,
            "quarantine": quarantine_table(quarantine) if quarantine else None,
        }
        return writer.write(tables)

    async def flush(self, writer: SegmentWriter) -> None:
        prints, snapshots, quarantine, started = self._take_batch()
        if not (prints or snapshots or quarantine):
            return
        await asyncio.to_thread(self._write, writer, prints, snapshots, quarantine)
        self.stats["segments"] += 1
        self.stats["snapshots"] += len(snapshots)
        if started is not None:
            self.durable_lag_s.append(time.monotonic() - started)

    async def _flush_loop(self, writer: SegmentWriter) -> None:
        while not self._stop.is_set():
            await self._sleep(self.config.flush_seconds)
            await self.flush(writer)

    async def run(self, run_seconds: float | None = None) -> Counter:
        """Collect until `stop()` or `run_seconds`; the last batch is flushed before returning."""
        writer = SegmentWriter(self.landing_dir)
        try:
            tasks = [asyncio.create_task(self.stream(v), name=f"stream:{v}") for v in self.venues]
            flusher = asyncio.create_task(self._flush_loop(writer))
            if run_seconds is not None:
                await self._sleep(run_seconds)
                self.stop()
            await self._stop.wait()
            await asyncio.gather(*tasks, return_exceptions=True)
            await flusher
            await self.flush(writer)
        finally:
            writer.close()
        for builder in self.builders.values():
            for key, value in dataclasses.asdict(builder.stats).items():
                self.stats[f"builder:{key}"] += value
        return self.stats


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fund-pipeline collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venues", default="binance,bybit,okx,hyperliquid")
    parser.add_argument("--bases", default="BTC,ETH")
    parser.add_argument("--landing", default="data/landing")
    parser.add_argument("--api-base-url", default=None, help="emulator base URL; default the venues' public endpoints")
    parser.add_argument("--snapshot", choices=["roll", "every_n_seconds", "every_update"], default="roll")
    parser.add_argument("--seconds", type=float, default=600.0, help="snapshot cadence for every_n_seconds")
    parser.add_argument("--run-seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--binance-all-market", action="store_true", help="subscribe to !markPrice@arr@1s")
    args = parser.parse_args(argv)
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    bases = [b.strip().upper() for b in args.bases.split(",") if b.strip()]
    try:
        collector = Collector(
            venues, bases, Path(args.landing), api_base_url=args.api_base_url,
            policy=SnapshotPolicy(mode=args.snapshot, seconds=args.seconds),
            config=CollectorConfig(binance_all_market=args.binance_all_market),
        )  # fmt: skip
    except ValueError as bad:
        parser.error(str(bad))

    async def main() -> Counter:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, collector.stop)
        return await collector.run(args.run_seconds)

    stats = asyncio.run(main())
    print("collector stopped: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items())), flush=True)
    return 0
