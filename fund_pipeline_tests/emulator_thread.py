"""The exchange emulator on its own event-loop thread, for tests whose client code is synchronous (ccxt, HTTP)."""

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fund_pipeline.emulator.server import RunningEmulator, start_emulator


@contextmanager
def emulator_in_thread(**kwargs) -> Iterator[RunningEmulator]:
    """`start_emulator(**kwargs)` on a fresh loop in a daemon thread; stops both on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emulator = asyncio.run_coroutine_threadsafe(start_emulator(**kwargs), loop).result(60)
    try:
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
