"""The live collector: venue WebSocket streams → curve builders → landing segments.

Over 500 lines on purpose: the connection tasks, the gap-fill and the flush share the builders and
the pending rows under one event loop; connection handling itself is in `connection.py`.

Each venue's symbols are split over connections at the venue's streams-per-connection limit;
one task per connection keeps it alive: exponential backoff with jitter between attempts (reset
by the rule in `CollectorConfig.stable_after_s`), the venue's application pings, a watchdog
that reconnects a stream silent for the venue's own silence limit (OKX pushes every 30-90 s,
Bybit every 100 ms), make-before-break rotation before the venue's connection age limit,
resubscription (and retries of subscriptions the venue refused) and a REST gap-fill of the
settled prints missed while disconnected (fed before the new connection's first frame, so they
land and reach the builders in time order). A live print that would skip whole funding windows
also triggers a gap-fill of its symbol first. Whole-market frames are parsed item by item:
dated contracts and unconfigured symbols are skipped and counted, a bad item is quarantined
alone. Frames that do not parse are counted and kept in quarantine segments; nothing a venue
sends can crash the loop. Intervals a stream does not carry (Binance, OKX before its first roll)
come from the venue's REST rule; a print whose interval is unknown is quarantined, never guessed.

A cold start seeds each builder with the last settled prints over REST, so the first live
message already gives a full curve. Prints, snapshots and quarantined frames are buffered and
flushed as one atomic segment set every `flush_seconds` (see landing.py): a `kill -9` loses at
most the last unflushed interval. Every connect, disconnect (with its reason), refused
subscription and quarantine is logged when it happens, and a status line every few seconds.
The collector never opens the warehouse.

Coin-margined perps (`CollectorConfig.inverse`): the bases' inverse perps the venues list (binance COIN-M,
bybit inverse, okx -USD-SWAP) are streamed too, on their real routes: where a venue streams them apart
(`StreamSpec.separate_inverse`: binance COIN-M on wss://dstream.binance.com/ws, bybit on
/v5/public/inverse) on connections of their own, funding and liquidations alike; okx on the same
connection as its linear swaps. Their prints and liquidations carry the unified inverse symbol
(BTC/USD:BTC), so builders, curves and `live_curve` keep them apart from the linear perps. A
whole-market subscription (`all_market`) is the linear connection's only.

Liquidations: on the venues that have a liquidation channel (`CollectorConfig.liquidation_venues`,
binance, bybit and okx by default) it is subscribed on the same connections; each connection keeps
its own symbols of a whole-market channel. Liquidation records land in their own `liquidations/`
segments of the same flush (same sequence number and guarantees as prints); a frame that does not
parse is quarantined like any other, and a liquidation timed further ahead of the venue's clock than
the tolerance is quarantined. Contract sizes a channel counts in (OKX `ctVal`) come from ccxt's
markets at the warm start; until known, those liquidations are quarantined, never guessed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from fund_pipeline.domain.curve import FundingCurveBuilder, SnapshotPolicy, snapshots_frame
from fund_pipeline.domain.liquidations import Liquidation
from fund_pipeline.domain.records import PRINT_COLUMNS, FundingPrint
from fund_pipeline.domain.time import NS_PER_HOUR, NS_PER_SECOND
from fund_pipeline.live.clocks import VenueClock, venue_clocks
from fund_pipeline.live.config import CollectorConfig, backoff_delay
from fund_pipeline.live.connection import Link, LinkReader
from fund_pipeline.live.landing import (
    SegmentWriter,
    frame_table,
    liquidations_table,
    prints_table,
    quarantine_table,
    read_landed,
)
from fund_pipeline.sources.liquidation_history import contract_sizes
from fund_pipeline.venues.registry import WS_VENUES, adapter
from fund_pipeline.venues.streams import NoInterval
from fund_pipeline.venues.wire import NoContractSize

__all__ = ["Collector", "CollectorConfig", "backoff_delay"]

log = logging.getLogger(__name__)
RAW_QUARANTINE_CHARS = 65_536


class Collector(LinkReader):
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
        rest_source: Any = None,
        seed: int | None = None,
    ) -> None:
        """`clock` is the venues' time (the emulator's clock in tests); receive times use it.

        Without it each venue's clock is learned from its REST server time and its messages' event
        times (one clock for all venues behind one `api_base_url`, an emulator); see live/clocks.py.
        """
        unknown = [v for v in venues if v not in WS_VENUES]
        if unknown:
            raise ValueError(f"collector: no WebSocket stream for venue(s) {unknown}; supported {list(WS_VENUES)}")
        if not bases:
            raise ValueError("collector: no bases given; name at least one (e.g. BTC)")
        self.venues = list(venues)
        self.config = config or CollectorConfig()
        self.symbols = {v: self._venue_symbols(v, bases) for v in venues}
        self.landing_dir = Path(landing_dir)
        self.api_base_url = api_base_url.rstrip("/") if api_base_url else None
        self.policy = policy or SnapshotPolicy()
        self.clock = clock
        self.clocks: dict[str, VenueClock] = venue_clocks(self.venues, self.api_base_url is not None, clock)
        self._rest = rest_source
        self._rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self.durable_lag_s: deque[float] = deque(maxlen=10_000)
        self.builders: dict[tuple[str, str], FundingCurveBuilder] = {}
        self.intervals: dict[str, dict[str, float]] = {v: {} for v in venues}
        self.contract_sizes: dict[str, dict[str, float]] = {v: {} for v in venues}
        self._last_settled: dict[tuple[str, str], int] = {}
        self._landed_settled: dict[tuple[str, str], int] = {}  # newest settled print landed by earlier runs
        self._seed_rows: dict[tuple[str, str], list[FundingPrint]] = {}
        self._windows: dict[tuple[str, str], int] = {}  # newest funding time fed to each builder
        self._prints: list[FundingPrint] = []
        self._snapshots: list[Any] = []
        self._quarantine: list[tuple[str, int, str, str]] = []
        self._liquidations: list[Liquidation] = []
        self._batch_started: float | None = None
        self._stop = asyncio.Event()
        self._connected: Counter[str] = Counter()
        # Venues whose messages carry their own event time: only those set (and are checked against) a clock.
        self._stamped = {v: bool(s and s.stamps_messages) for v in venues for s in [adapter(v).stream]}
        self._last_message: dict[str, float] = {}

    # ------------------------------------------------------------ plumbing

    def _venue_symbols(self, venue: str, bases: list[str]) -> list[str]:
        """The bases' linear perps, then (with `inverse`) the coin-margined perps the venue lists of them."""
        venue_adapter = adapter(venue)
        linear = [venue_adapter.venue_symbol(b) for b in bases]
        if not self.config.inverse:
            return linear
        return linear + [p.symbol for p in venue_adapter.inverse_perps if p.base in bases]

    def _apart(self, venue: str, symbols: list[str]) -> bool:
        """Whether `symbols` are coin-margined perps a venue streams apart from its linear ones (another route/host)."""
        spec, venue_adapter = adapter(venue).stream, adapter(venue)
        return bool(spec and spec.separate_inverse and symbols and venue_adapter.inverse_perp(symbols[0]) is not None)

    def ws_url(self, venue: str, symbols: list[str] | None = None) -> str:
        """The venue's stream URL (at the venue, or under the emulator's `<base>/<venue>`): its coin-margined perps'
        own route or host for a connection of them where the venue streams them apart."""
        spec = adapter(venue).stream
        if spec is None:
            raise ValueError(f"collector: {venue} has no stream")
        base = None if self.api_base_url is None else self.api_base_url.replace("http", "ws", 1) + f"/{venue}"
        if self._apart(venue, symbols or []):
            return spec.inverse_endpoint(base)
        return spec.endpoint(base)

    def whole_market(self, venue: str, symbols: list[str]) -> bool:
        """The whole-market subscription is the linear perps' (binance's `!markPrice@arr` is USDⓈ-M's)."""
        return self.config.all_market and not self._apart(venue, symbols)

    def connection_groups(self, venue: str) -> list[list[str]]:
        """The venue's symbols split over connections at its streams-per-connection limit (one for whole-market),
        the coin-margined perps it streams apart on connections of their own."""
        venue_adapter = adapter(venue)
        symbols = self.symbols[venue]
        inverse = [s for s in symbols if venue_adapter.inverse_perp(s) is not None]
        kinds = [[s for s in symbols if s not in inverse], inverse] if self._apart(venue, inverse) else [symbols]
        per = max(1, self.config.streams_per_connection.get(venue, len(symbols) or 1))
        groups = []
        for kind in (k for k in kinds if k):
            if self.whole_market(venue, kind):
                groups.append(kind)
            else:
                groups += [kind[i : i + per] for i in range(0, len(kind), per)]
        return groups

    def rest(self) -> Any:
        if self._rest is None:
            from fund_pipeline.sources.ccxt import CcxtSource

            # Pace requests to the public venues' limits; the emulator answers 429 itself when pushed.
            self._rest = CcxtSource(
                venues=self.venues,
                symbols=self.symbols,
                api_base_url=self.api_base_url,
                venue_now=lambda venue: self.clocks[venue].now(),
                throttle=self.api_base_url is None,
                inverse=self.config.inverse,
            )
        return self._rest

    def stop(self) -> None:
        self._stop.set()

    def _builder(self, venue: str, symbol: str) -> FundingCurveBuilder:
        builder = self.builders.get((venue, symbol))
        if builder is None:
            builder = self.builders[(venue, symbol)] = FundingCurveBuilder(venue, symbol, self.policy)
        return builder

    def _ingest(self, prints: list[FundingPrint]) -> None:
        """Feed the builders and buffer for landing, in one order (the replay's order)."""
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        self._prints.extend(prints)
        windows = self._windows
        for p in prints:
            key = (p.venue, p.symbol)
            snapshot = self._builder(*key).update(p.funding_time, p.rate, p.interval_h, p.ts)
            if p.funding_time > windows.get(key, p.funding_time - 1):
                windows[key] = p.funding_time
            if snapshot is not None:
                self._snapshots.append(snapshot)
        self.stats["prints"] += len(prints)

    def quarantine(self, venue: str, received_ns: int, reason: str, raw: Any) -> None:
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        self._quarantine.append((venue, received_ns, reason[:500], text[:RAW_QUARANTINE_CHARS]))
        self.stats[f"quarantined:{venue}"] += 1
        log.warning("%s: quarantined a message: %s", venue, reason[:200])

    def _settled_rows(self, venue: str, frame: pd.DataFrame) -> list[FundingPrint]:
        """REST settled prints as landing records, newer than what was already landed."""
        if frame.empty:
            return []
        received = self.clocks[venue].local_ns()
        rows = []
        for rec in frame[PRINT_COLUMNS].itertuples(index=False):
            funding = rec.funding_time.value
            if funding <= self._last_settled.get((venue, rec.symbol), -1):
                continue
            self._last_settled[(venue, rec.symbol)] = funding
            self.intervals[venue].setdefault(rec.symbol, float(rec.interval_h))
            rows.append(FundingPrint(
                venue, rec.symbol, rec.base, "settled", funding, rec.ts.value, received, float(rec.rate),
                float(rec.interval_h), float(rec.mark_price), float(rec.index_price), "rest",
            ))  # fmt: skip
        return rows

    # ------------------------------------------------------------ intervals, warm start and gap-fill

    async def learn_intervals(self, venue: str) -> None:
        """The intervals the venue's stream does not carry, by its adapter's REST rule; logged when it fails."""
        learn = getattr(self.rest(), "stream_intervals", None)
        if learn is None:
            return
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(learn, venue, self.symbols[venue]), self.config.seed_timeout_s
            )
        except Exception as failed:  # noqa: BLE001 - unknown intervals quarantine prints; retried at each connect
            self.stats[f"intervals_failed:{venue}"] += 1
            log.warning("%s: funding intervals not loaded (prints without one are quarantined): %r", venue, failed)
            return
        self.intervals[venue].update(found)

    async def learn_contract_sizes(self, venue: str) -> None:
        """Contract sizes of the venue's symbols (ccxt's markets) for a liquidation channel counting contracts."""
        caller = getattr(self.rest(), "caller", None)
        if venue not in self.config.liquidation_venues or caller is None:
            return
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(contract_sizes, caller(venue), self.symbols[venue]), self.config.seed_timeout_s
            )
        except Exception as failed:  # noqa: BLE001 - liquidations counted in contracts are quarantined without them
            self.stats[f"contract_sizes_failed:{venue}"] += 1
            log.warning("%s: contract sizes not loaded (liquidations in contracts are quarantined): %r", venue, failed)
            return
        self.contract_sizes[venue].update(found)

    async def sync_clock(self, venue: str) -> None:
        """Set the venue's clock from its REST server time before asking it for "the last" settlements."""
        server_time = getattr(self.rest(), "server_time", None)
        if server_time is None or self.clock is not None:
            return
        clock = self.clocks[venue]
        sent = clock.local_ns()
        try:
            stated = await asyncio.wait_for(asyncio.to_thread(server_time, venue), self.config.seed_timeout_s)
        except Exception as failed:  # noqa: BLE001 - the stream's event times will set the clock instead
            log.warning("%s: server time not read (%r); its clock follows its stream", venue, failed)
            return
        clock.sync(stated.value, (sent + clock.local_ns()) // 2)
        if abs(clock.offset_ns) > self.config.future_tolerance_s * NS_PER_SECOND:
            log.info("%s: venue clock is %+.0f s from the local clock", venue, clock.offset_ns / NS_PER_SECOND)

    async def warm_start(self, venue: str) -> None:
        """Seed the venue's builders with the last settled prints (REST): the first live message gives a full curve."""
        n = self.config.seed_prints

        async def seed(symbol: str) -> None:
            try:
                frame = await asyncio.wait_for(
                    asyncio.to_thread(self.rest().last_settled, venue, symbol, n), self.config.seed_timeout_s
                )
            except Exception as failed:  # noqa: BLE001 - a venue's REST failure leaves that builder cold
                self.stats[f"seed_failed:{venue}"] += 1
                log.warning("%s %s: warm start failed: %r", venue, symbol, failed)
                return
            rows = self._settled_rows(venue, frame)
            if rows:
                self._seed(venue, symbol, rows)
                self.stats["seed_prints"] += len(rows)

        await asyncio.to_thread(self.rest)  # ccxt takes seconds to import: not on the event loop
        await self.sync_clock(venue)
        await self.learn_intervals(venue)
        await self.learn_contract_sizes(venue)
        await asyncio.gather(*(seed(s) for s in self.symbols[venue]))

    def _seed(self, venue: str, symbol: str, rows: list[FundingPrint]) -> None:
        """Settled rows landed before a symbol's first live print all seed its builder (no snapshots).

        That is the replay's rule for landed prints: the settled rows before a stream's first
        live row are its seed, the rows after it are updates.
        """
        seed_rows = self._seed_rows.setdefault((venue, symbol), [])
        seed_rows.extend(rows)
        landed = self._landed_settled.get((venue, symbol), -1)
        rows = [r for r in rows if r.funding_time > landed]  # the builder takes them all, landing only the new
        settled = pd.DataFrame(
            {
                "funding_time": pd.to_datetime([r.funding_time for r in seed_rows], utc=True),
                "ts": pd.to_datetime([r.ts for r in seed_rows], utc=True),
                "rate": [r.rate for r in seed_rows],
                "interval_h": [r.interval_h for r in seed_rows],
            }
        )
        self._builder(venue, symbol).seed(settled)
        self._windows[(venue, symbol)] = max(r.funding_time for r in seed_rows)
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        self._prints.extend(rows)

    async def gap_fill(self, venue: str, symbols: list[str]) -> None:
        """Settled prints since the last landed one (else since the builder's window), per symbol of `venue`."""
        for symbol in symbols:
            last = self._last_settled.get((venue, symbol), self._windows.get((venue, symbol)))
            if last is None:
                continue
            since = pd.Timestamp(last, tz="UTC")
            try:
                frame = await asyncio.wait_for(
                    asyncio.to_thread(self.rest().settled_since, venue, symbol, since), self.config.gap_fill_timeout_s
                )
            except TimeoutError:
                self.stats[f"gap_fill_failed:{venue}"] += 1
                log.warning("%s %s: gap-fill timed out after %.0f s", venue, symbol, self.config.gap_fill_timeout_s)
                continue
            except Exception as failed:  # noqa: BLE001 - a failed gap-fill is counted, the stream goes on
                self.stats[f"gap_fill_failed:{venue}"] += 1
                log.warning("%s %s: gap-fill failed: %s: %s", venue, symbol, type(failed).__name__, failed)
                continue
            rows = self._settled_rows(venue, frame)
            if (venue, symbol) in self._seed_rows:
                self._seed(venue, symbol, rows)
            else:
                self._ingest(rows)
            self.stats[f"gap_fill_prints:{venue}"] += len(rows)

    # ------------------------------------------------------------ one connection's frames

    async def on_frame(self, venue: str, link: Link, raw: Any) -> bool:
        """Parse one frame and ingest its prints; True when it held data."""
        clock = self.clocks[venue]
        received = clock.local_ns()
        self.stats[f"frames:{venue}"] += 1
        self._last_message[venue] = time.monotonic()
        ctx = link.parser.ctx
        ctx.now_ns = clock.now_ns()
        try:
            prints = link.parser.parse(raw, received)
        except NoInterval as unknown:
            self.quarantine(venue, received, str(unknown), raw)
            if self.stats[f"intervals_failed:{venue}"]:
                await self.learn_intervals(venue)
            return False
        except NoContractSize as unknown:
            self.quarantine(venue, received, str(unknown), raw)
            if self.stats[f"contract_sizes_failed:{venue}"]:
                await self.learn_contract_sizes(venue)
            return False
        except ValueError as bad:  # MalformedMessage and the like
            self.quarantine(venue, received, str(bad), raw)
            return False
        finally:
            for reason, item in ctx.bad_items:
                self.quarantine(venue, received, reason, _json_text(item))
            ctx.bad_items.clear()
            for reason, n in ctx.skipped.items():
                self.stats[f"skipped:{venue}:{reason}"] += n
            ctx.skipped.clear()
            liquidations, ctx.liquidations = ctx.liquidations, []
        if liquidations:
            self._take_liquidations(venue, liquidations, clock, received)
            if link.first_data is None:
                link.first_data = time.monotonic()
        if self._stamped[venue]:
            prints = self._in_time(venue, prints, clock, received)
        if not prints:
            return bool(liquidations)
        skipping = self._skipping_windows(prints)
        if skipping:
            await self.gap_fill(venue, skipping)
        self._ingest(prints)
        for p in prints:
            self._seed_rows.pop((p.venue, p.symbol), None)
        if link.first_data is None:
            link.first_data = time.monotonic()
        return True

    def _take_liquidations(self, venue: str, rows: list[Liquidation], clock: VenueClock, received: int) -> None:
        """Buffer liquidations for landing; one timed beyond the tolerance ahead of the venue's clock is quarantined."""
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        limit = clock.now_ns() + int(self.config.future_tolerance_s * NS_PER_SECOND)
        for liq in rows:
            if liq.ts > limit:
                self.stats[f"future:{venue}"] += 1
                at = pd.Timestamp(liq.ts, tz="UTC")
                reason = f"{venue} {liq.symbol}: liquidation at {at} is ahead of the venue's clock ({clock.now():%T})"
                self.quarantine(venue, received, reason, repr(liq))
            else:
                self._liquidations.append(liq)
                self.stats["liquidations"] += 1

    def _in_time(self, venue: str, prints: list[FundingPrint], clock: VenueClock, received: int) -> list[FundingPrint]:
        """Prints within the tolerance of the venue's clock (which they then update); the others are quarantined.

        A future print never moves the clock, the cursor nor a builder.
        """
        if not clock.stream_observed and prints:  # the stream has not set it yet: its first message does
            clock.observe(min(p.ts for p in prints), received)
        tolerance = int(self.config.future_tolerance_s * NS_PER_SECOND)
        limit = clock.now_ns() + tolerance
        kept = [p for p in prints if p.ts <= limit]
        for p in prints:
            if p.ts > limit:
                self.stats[f"future:{venue}"] += 1
                reason = (
                    f"{venue} {p.symbol}: event time {pd.Timestamp(p.ts, tz='UTC')} is more than "
                    f"{self.config.future_tolerance_s:g} s ahead of the venue's clock ({clock.now():%F %T} UTC)"
                )
                self.quarantine(venue, received, reason, repr(p))
        if kept:
            clock.observe(max(p.ts for p in kept), received)
        elif prints and clock.ahead(min(p.ts for p in prints), received, tolerance):
            log.warning("%s: venue clock re-set to %s UTC after consistent messages ahead of it", venue, clock.now())
        return kept

    def _skipping_windows(self, prints: list[FundingPrint]) -> list[str]:
        """Symbols whose print would make its builder skip (and so interpolate) funding windows.

        A missed window has usually settled by now (the stream stalled, or settled between the
        warm start and the first live message): its REST print is fetched instead of guessed.
        """
        found = []
        for p in prints:
            last = self._windows.get((p.venue, p.symbol))
            if last is not None and p.funding_time - last >= 1.5 * p.interval_h * NS_PER_HOUR and p.symbol not in found:
                found.append(p.symbol)
        return found

    # ------------------------------------------------------------ landing and status

    def _take_batch(self) -> tuple[list, list, list, list, float | None]:
        batch = (self._prints, self._snapshots, self._quarantine, self._liquidations, self._batch_started)
        self._prints, self._snapshots, self._quarantine, self._liquidations = [], [], [], []
        self._batch_started = None
        return batch

    def _write(
        self, writer: SegmentWriter, prints: list, snapshots: list, quarantine: list, liquidations: list
    ) -> int | None:
        tables = {
            "prints": prints_table(prints) if prints else None,
            "snapshots": frame_table(snapshots_frame(snapshots)) if snapshots else None,
            "quarantine": quarantine_table(quarantine) if quarantine else None,
            "liquidations": liquidations_table(liquidations) if liquidations else None,
        }
        return writer.write(tables)

    async def flush(self, writer: SegmentWriter) -> None:
        prints, snapshots, quarantine, liquidations, started = self._take_batch()
        if not (prints or snapshots or quarantine or liquidations):
            return
        await asyncio.to_thread(self._write, writer, prints, snapshots, quarantine, liquidations)
        self.stats["segments"] += 1
        self.stats["snapshots"] += len(snapshots)
        if started is not None:
            self.durable_lag_s.append(time.monotonic() - started)

    async def _flush_loop(self, writer: SegmentWriter) -> None:
        while not self._stop.is_set():
            await self._sleep(self.config.flush_seconds)
            await self.flush(writer)

    def status_line(self, prints_per_s: float) -> str:
        now = time.monotonic()
        parts = []
        for venue in self.venues:
            last = self._last_message.get(venue)
            age = "no message yet" if last is None else f"last message {now - last:.1f}s ago"
            parts.append(
                f"{venue} {self._connected[venue]}/{len(self.connection_groups(venue))} connected, "
                f"{age}, {self.stats[f'reconnects:{venue}']} reconnects, "
                f"{self.stats[f'quarantined:{venue}']} quarantined"
            )
        return f"{prints_per_s:,.0f} prints/s; " + "; ".join(parts)

    async def _status_loop(self) -> None:
        seen, at = self.stats["prints"], time.monotonic()
        while not self._stop.is_set():
            await self._sleep(self.config.status_every_s)
            now, total = time.monotonic(), self.stats["prints"]
            log.info("status: %s", self.status_line((total - seen) / max(now - at, 1e-9)))
            seen, at = total, now

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    def _read_landed_settled(self) -> None:
        """The newest settled print each stream landed in earlier runs: a restart's warm start lands none twice."""
        problems: list[Any] = []
        landed = read_landed(
            self.landing_dir, "prints", columns=["venue", "symbol", "funding_time"],
            filters=[("kind", "=", "settled")], problems=problems,
        )  # fmt: skip
        for problem in problems:
            log.warning("landing: %s", problem)
        if landed.empty:
            return
        newest = landed.groupby(["venue", "symbol"])["funding_time"].max()
        self._landed_settled = {key: int(t.value) for key, t in newest.items()}

    async def run(self, run_seconds: float | None = None) -> Counter[str]:
        """Collect until `stop()` or `run_seconds`; the last batch is flushed before returning."""
        writer = SegmentWriter(self.landing_dir)
        await asyncio.to_thread(self._read_landed_settled)
        try:
            tasks = [asyncio.create_task(self.stream(v), name=f"stream:{v}") for v in self.venues]
            helpers = [asyncio.create_task(self._flush_loop(writer)), asyncio.create_task(self._status_loop())]
            if run_seconds is not None:
                await self._sleep(run_seconds)
                self.stop()
            await self._stop.wait()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*helpers)
            await self.flush(writer)
        finally:
            writer.close()
        for builder in self.builders.values():
            for key, value in dataclasses.asdict(builder.stats).items():
                self.stats[f"builder:{key}"] += value
        return self.stats

    async def stream(self, venue: str) -> None:
        """Warm-start the venue, then keep each of its connections alive until the collector stops."""
        await self.warm_start(venue)
        await asyncio.gather(*(self.keep_connected(venue, group) for group in self.connection_groups(venue)))


def _json_text(item: Any) -> str:
    import json

    try:
        return json.dumps(item)
    except (TypeError, ValueError):
        return repr(item)
