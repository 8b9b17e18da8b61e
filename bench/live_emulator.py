"""A load emulator for the live benchmarks: Binance `!markPrice@arr`-style batches for N symbols,
served from its own process so the collector under test keeps its core.

Each frame is `seconds_per_frame` emulator seconds after the previous one (1 for `@1s`, 3 for
Binance's default `!markPrice@arr` cadence): a JSON list with one markPriceUpdate per symbol. The push
schedule is a list of (prints per second, frames); the server reports when each step started and
ended (time.monotonic, shared by processes on Linux) and how many frames it sent.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time

HOUR_MS = 3_600_000
FUNDING_INTERVAL_MS = 8 * HOUR_MS
EMULATOR_START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def symbol_names(n_symbols: int) -> list[str]:
    """Binance-style native ids X0001USDT..: unified as X0001/USDT:USDT by the stream parser."""
    return [f"X{i + 1:04d}USDT" for i in range(n_symbols)]


def batch_frame(natives: list[str], second: int) -> str:
    """The all-market frame of emulator second `second`: rates drift per symbol, funding on the 8h grid."""
    now_ms = EMULATOR_START_MS + 1000 * second
    funding_ms = (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
    events = ",".join(
        f'{{"e":"markPriceUpdate","E":{now_ms},"s":"{native}","p":"{100.0 + i:.4f}","P":"{100.0 + i:.4f}",'
        f'"i":"{100.0 + i:.4f}","r":"{0.0001 + 1e-6 * ((i * 7 + second) % 50):.8f}","T":{funding_ms}}}'
        for i, native in enumerate(natives)
    )
    return f"[{events}]"


def _serve(n_symbols: int, schedule: list[tuple[float, int]], seconds_per_frame: int, ports, results) -> None:
    import websockets

    natives = symbol_names(n_symbols)

    async def push(ws) -> None:
        await ws.recv()  # the SUBSCRIBE request
        second, steps = 0, []
        for prints_per_s, frames in schedule:
            period = n_symbols / prints_per_s
            started = time.monotonic()
            for k in range(frames):
                await ws.send(batch_frame(natives, second))
                second += seconds_per_frame
                delay = started + (k + 1) * period - time.monotonic()
                await asyncio.sleep(max(delay, 0.0))
            steps.append((prints_per_s, frames, started, time.monotonic()))
        results.put(steps)
        await ws.wait_closed()

    async def main() -> None:
        async with websockets.serve(push, "127.0.0.1", 0, max_size=2**24, ping_interval=None) as server:
            ports.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


class LoadEmulator:
    """The server process; `port` once started, `steps()` blocks until the schedule has been pushed."""

    def __init__(self, n_symbols: int, schedule: list[tuple[float, int]], seconds_per_frame: int = 1):
        context = multiprocessing.get_context("spawn")
        self._ports, self._results = context.Queue(), context.Queue()
        self._process = context.Process(
            target=_serve, args=(n_symbols, schedule, seconds_per_frame, self._ports, self._results), daemon=True
        )
        self._process.start()
        self.port = self._ports.get(timeout=60)

    def steps(self, timeout: float) -> list[tuple]:
        return self._results.get(timeout=timeout)

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(timeout=10)
